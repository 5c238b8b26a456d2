"""The user-state cache: LRU bounds, keys from the history the model reads, copies carry no states, and SASRec
serving the same states from it as from its network, forgetting them when its weights change."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from cycles import cycle_dataset
from hypothesis import given
from hypothesis import strategies as hst

from rankstack.sequential import SASRec, SASRecConfig
from rankstack.sequential.state_cache import CachesStates, StateCache, history_key

TINY = {"max_len": 8, "hidden_dim": 8, "dropout": 0.0, "epochs": 2, "batch_size": 64, "validation": False,
        "device": "cpu"}


def _row(value: float) -> np.ndarray:
    return np.full(2, value, np.float32)


@given(hst.lists(hst.integers(0, 6), max_size=60), hst.integers(1, 4))
def test_keeps_exactly_the_most_recently_used_keys(touches: list[int], capacity: int) -> None:
    cache, order = StateCache(capacity), []
    for key in touches:
        name = str(key).encode()
        if cache.get_many([name])[0] is None:
            cache.put_many([name], _row(key)[None])
        order = [k for k in order if k != name] + [name]
        assert len(cache) == min(capacity, len(set(order)))
    recent = order[-capacity:]
    assert all(s is not None for s in cache.get_many(recent))
    assert cache.hits + cache.misses == len(touches) + len(recent)


def test_hits_refresh_recency_and_states_come_back_unchanged() -> None:
    cache = StateCache(2)
    cache.put_many([b"a", b"b"], np.stack([_row(1), _row(2)]))
    assert cache.get_many([b"a"])[0] is not None  # a is now the most recent: b goes first
    cache.put_many([b"c"], _row(3)[None])
    a, b, c = cache.get_many([b"a", b"b", b"c"])
    assert b is None and a is not None and c is not None
    assert a.tolist() == [1.0, 1.0] and c.tolist() == [3.0, 3.0]


@given(hst.lists(hst.integers(0, 10**6), max_size=30), hst.integers(1, 20))
def test_the_key_is_the_last_max_len_items_whatever_the_dtype(items: list[int], max_len: int) -> None:
    history = np.array(items, dtype=np.int64)
    assert history_key(history, max_len) == history_key(history[-max_len:], max_len)
    assert history_key(history.astype(np.int32), max_len) == history_key(history, max_len)
    assert history_key(np.append(history, -1), max_len) != history_key(history, max_len)  # a fresh click


def test_copies_and_pickles_carry_the_capacity_only() -> None:
    cache = StateCache(3)
    cache.put_many([b"a"], _row(1)[None])
    for other in (copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert other.capacity == 3 and len(other) == 0
    cache.put_many([b"b"], _row(2)[None])  # the original's lock still works


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_below_one_is_refused(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        StateCache(capacity)


def test_put_many_refuses_mismatched_rows() -> None:
    with pytest.raises(ValueError, match="2 keys for 1 states"):
        StateCache(4).put_many([b"a", b"b"], _row(1)[None])


@pytest.fixture(scope="module")
def model() -> SASRec:
    torch.set_num_threads(1)
    return SASRec(SASRecConfig(**TINY)).fit(cycle_dataset())


def test_sasrec_serves_cached_states_equal_to_fresh_ones(model: SASRec) -> None:
    histories = [model.histories_[u] for u in range(6)] + [np.zeros(0, np.int64)]
    model.enable_state_cache(100)
    try:
        assert isinstance(model, CachesStates) and model.state_cache is not None
        first = model.user_states(histories[:4])
        assert model.state_cache.misses == 4 and len(model.state_cache) == 4
        mixed = model.user_states(histories)  # four hits, three computed
        assert model.state_cache.hits == 4 and model.state_cache.misses == 7
        assert torch.equal(mixed[:4], first)
        model.enable_state_cache(0)
        fresh = model.user_states(histories)
        assert torch.allclose(mixed, fresh, atol=1e-5)
    finally:
        model.enable_state_cache(0)


def test_sasrec_forgets_states_when_its_weights_change(model: SASRec) -> None:
    refit = copy.deepcopy(model)
    refit.enable_state_cache(100)
    history = [refit.histories_[0]]
    stale = refit.user_states(history)
    with torch.no_grad():
        refit.net_.items.weight.mul_(2.0)  # stand in for new weights, then reload them below
    tensors, meta = refit.state_tensors()
    refit.load_state_tensors(tensors, meta)
    assert refit.state_cache is not None and len(refit.state_cache) == 0
    assert not torch.allclose(refit.user_states(history), stale)
    refit.fit(cycle_dataset())  # training validates without the cache and leaves it empty
    assert refit.state_cache is not None and len(refit.state_cache) == 0


def test_enabling_the_same_capacity_again_keeps_the_states(model: SASRec) -> None:
    model.enable_state_cache(50)
    try:
        model.user_states([model.histories_[0]])
        cache = model.state_cache
        model.enable_state_cache(50)  # e.g. Pipeline.with_config over the same fitted model
        assert model.state_cache is cache and cache is not None and len(cache) == 1
        model.enable_state_cache(60)
        assert model.state_cache is not cache and len(model.state_cache) == 0  # type: ignore[arg-type]
    finally:
        model.enable_state_cache(0)
