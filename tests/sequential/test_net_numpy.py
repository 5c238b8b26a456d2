"""The NumPy serving pass of the SASRec network gives torch's ``last_hidden`` on the same weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.sequential import sasrec as sasrec_module
from rankstack.sequential.batches import pad_left, pad_left_array
from rankstack.sequential.net import SASRecNet
from rankstack.sequential.net_numpy import NumpyLastHidden
from rankstack.sequential.sasrec import SASRec, SASRecConfig


def make_net(blocks: int = 2, heads: int = 1, ffn_mult: int = 1, max_len: int = 12, dim: int = 16,
             gelu: str = "none", seed: int = 0) -> SASRecNet:
    """A random eval-mode network (``gelu``: the feed-forward's GELU variant)."""
    torch.manual_seed(seed)
    shape = SimpleNamespace(max_len=max_len, hidden_dim=dim, blocks=blocks, heads=heads, dropout=0.2,
                            ffn_mult=ffn_mult)
    net = SASRecNet(60, shape)
    for block in net.blocks:
        block.ffn[1] = torch.nn.GELU(approximate=gelu)
    return net.eval()


def torch_pass(net: SASRecNet, histories: list[np.ndarray]) -> np.ndarray:
    """torch's serving pass."""
    with torch.no_grad():
        return net.last_hidden(pad_left(histories, net.max_len)).numpy()


def numpy_pass(net: SASRecNet, histories: list[np.ndarray]) -> np.ndarray:
    """The NumPy pass."""
    return NumpyLastHidden(net)(pad_left_array(histories, net.max_len))


HISTORIES = [[[1, 2, 3]], [[1, 2, 3], [5]], [[]], [[4, 5, 6, 7], []], [list(range(12))], [list(range(30))],
             [[3], [1, 4, 1, 5, 9, 2, 6], list(range(40)), [], [7, 7]]]


@pytest.mark.parametrize(("blocks", "heads", "ffn_mult", "gelu"), [
    (0, 1, 1, "none"), (1, 1, 1, "none"), (2, 1, 1, "none"), (2, 2, 2, "none"), (3, 4, 1, "none"),
    (2, 2, 1, "tanh"),
])
@pytest.mark.parametrize("histories", HISTORIES)
def test_the_numpy_pass_gives_torchs_last_hidden(blocks: int, heads: int, ffn_mult: int, gelu: str,
                                                 histories: list[list[int]]) -> None:
    net = make_net(blocks, heads, ffn_mult, gelu=gelu, seed=blocks + heads)
    rows = [np.array(h, dtype=np.int64) for h in histories]
    served = numpy_pass(net, rows)
    assert served.dtype == np.float32 and served.shape == (len(rows), 16)
    np.testing.assert_allclose(served, torch_pass(net, rows), atol=2e-5, rtol=1e-5)
    for row, h in enumerate(rows):
        if not len(h):
            assert not served[row].any()  # an empty history's state is 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 59), max_size=20), min_size=1, max_size=9))
def test_any_batch_of_histories_agrees(histories: list[list[int]]) -> None:
    net = make_net(blocks=2, heads=2, max_len=12)
    rows = [np.array(h, dtype=np.int64) for h in histories]
    np.testing.assert_allclose(numpy_pass(net, rows), torch_pass(net, rows), atol=2e-5, rtol=1e-5)


def test_a_pass_knows_when_its_network_changed() -> None:
    net = make_net()
    fast = NumpyLastHidden(net)
    assert fast.current(net)
    net.load_state_dict(make_net(seed=7).state_dict())  # copies into the same storage
    assert not fast.current(net)
    fast = NumpyLastHidden(net)
    with torch.no_grad():
        net.blocks[1].ffn[3].bias.add_(0.1)  # one tensor of the last block, in place
    assert not fast.current(net)
    fast = NumpyLastHidden(net)
    net.blocks[0].qkv = torch.nn.Linear(16, 48)  # a replaced fused projection
    assert not fast.current(net)
    assert not NumpyLastHidden(net).current(make_net())  # another network


def test_only_a_float32_cpu_network_is_taken_and_a_long_sequence_is_refused() -> None:
    net = make_net()
    with pytest.raises(ValueError, match="sequence length 13 exceeds max_len 12"):
        NumpyLastHidden(net)(np.ones((1, 13), dtype=np.int64))
    net.double()
    assert not NumpyLastHidden.supports(net)
    with pytest.raises(ValueError, match="float32 network on the CPU"):
        NumpyLastHidden(net)


def fitted_sasrec() -> SASRec:
    """A SASRec whose network is random (no fit needed for the pass)."""
    model = SASRec(SASRecConfig(max_len=12, hidden_dim=16, heads=2))
    model.device_ = torch.device("cpu")
    model.n_items_ = 60
    model.net_ = model.new_net().eval()
    return model


def test_sasrec_serves_small_batches_with_the_numpy_pass_and_follows_a_moved_network(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = fitted_sasrec()
    rows = [np.array(h, dtype=np.int64) for h in ([1, 2, 3], [], list(range(20)))]
    served = model._compute_states(rows, batch_size=2048)
    assert model._numpy_pass is not None  # taken for a batch of three
    monkeypatch.setattr(sasrec_module, "NUMPY_MAX_BATCH", 0)
    np.testing.assert_allclose(served.numpy(), model._compute_states(rows, batch_size=2048).numpy(), atol=2e-5,
                               rtol=1e-5)
    monkeypatch.undo()
    kept = model._numpy_pass
    model._compute_states(rows, batch_size=2048)
    assert model._numpy_pass is kept  # nothing changed: the same arrays
    other = make_net(max_len=12, heads=2, seed=3)
    model.net_.load_state_dict(other.state_dict())  # in place: gathered again, and the new weights serve
    np.testing.assert_allclose(model._compute_states(rows, batch_size=2048).numpy(), torch_pass(other, rows),
                               atol=2e-5, rtol=1e-5)
    assert model._numpy_pass is not kept
    kept = model._numpy_pass
    model.net_.double()  # new storage, and a dtype the NumPy pass does not take: torch serves, in float64
    assert model._compute_states(rows, batch_size=2048).dtype == torch.float32  # last_hidden(...).float()
    model.net_.float()  # new storage again: gathered anew
    model._compute_states(rows, batch_size=2048)
    assert model._numpy_pass is not kept
