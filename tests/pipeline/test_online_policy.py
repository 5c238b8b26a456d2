"""The learning exploration stage in the pipeline: slates with positive propensities from the pool, online folds
that equal one batch fold, checkpoints that resume exactly, identical state across instances sharing a store,
features saved with the artifact, and clear errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data.dataset import Dataset
from rankstack.errors import ArtifactError, ConfigError
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.online_policy import OnlinePolicy
from rankstack.pipeline.pipeline import Pipeline
from rankstack.state import SQLiteStateStore
from rankstack.state.feedback_log import LoggedEvent

from .conftest import build, config_dict, manifest_for

POLICIES = ["linucb", "lints", "squarecb", "bernoulli_ts", "ridge_epsilon_greedy"]


def feedback(pipeline: Pipeline, rounds: int, seed: int = 0) -> list[LoggedEvent]:
    """Impressions of served slates, and clicks on items of the user's taste group (item i % 4 == user u % 4)."""
    rng = np.random.default_rng(seed)
    out: list[LoggedEvent] = []
    for r in range(rounds):
        user = f"u{int(rng.integers(0, 60))}"
        slate = pipeline.recommend([RecommendRequest(user_id=user, k=4, request_id=f"r{seed}-{r}")])[0]
        for item in slate.items:
            out.append(LoggedEvent(len(out) + 1, user, item.item_id, "impression"))
            if int(item.item_id[1:]) % 4 == int(user[1:]) % 4 and rng.random() < 0.5:
                out.append(LoggedEvent(len(out) + 1, user, item.item_id, "click"))
    return out


@pytest.mark.parametrize("policy", POLICIES)
def test_slates_come_from_the_pool_with_positive_propensities(small_split: tuple[Dataset, Dataset],
                                                              policy: str) -> None:
    pipeline = build(small_split[0], exploration={"policy": policy, "pool": 12})
    assert isinstance(pipeline.online, OnlinePolicy)
    for user in ("u1", "u2", "stranger"):
        response = pipeline.recommend([RecommendRequest(user_id=user, k=5, request_id="a")])[0]
        ids = [i.item_id for i in response.items]
        assert len(ids) == 5 == len(set(ids))
        assert all(i.propensity is not None and 0 < i.propensity <= 1 for i in response.items)
        again = pipeline.recommend([RecommendRequest(user_id=user, k=5, request_id="a")])[0]
        assert [i.item_id for i in again.items] == ids  # same request, same draws


@pytest.mark.parametrize("policy", POLICIES)
def test_online_folds_equal_one_batch_fold_and_move_the_state(small_split: tuple[Dataset, Dataset],
                                                              policy: str) -> None:
    served = build(small_split[0], exploration={"policy": policy, "pool": 12})
    log = feedback(served, 40)
    batch = build(small_split[0], exploration={"policy": policy, "pool": 12})
    assert batch.online is not None and served.online is not None
    before = batch.online.describe()["digest"]
    assert batch.online.fold(log) == len(log)
    online = build(small_split[0], exploration={"policy": policy, "pool": 12}).online
    assert online is not None
    rng = np.random.default_rng(1)
    at = 0
    while at < len(log):
        size = int(rng.integers(1, 30))
        online.fold(log[at: at + size])
        online.fold(log[max(at - 3, 0): at + size])  # re-delivered rows (≤ cursor) count nothing
        at += size
    assert online.describe() == batch.online.describe()
    assert batch.online.describe()["digest"] != before
    assert batch.online.state.stats.events == len(log) and online.cursor == log[-1].seq


def test_learning_moves_slates_toward_clicked_items(small_split: tuple[Dataset, Dataset]) -> None:
    """LinUCB after feedback where users click only their taste group: more of the slate is in the group."""
    pipeline = build(small_split[0], exploration={"policy": "linucb", "pool": 20,
                                                  "learning": {"alpha": 0.1, "prior_weight": 0.0}})

    def share() -> float:
        hits = 0
        for u in range(60):
            slate = pipeline.recommend([RecommendRequest(user_id=f"u{u}", k=4, request_id=f"s{u}")])[0]
            hits += sum(int(i.item_id[1:]) % 4 == u % 4 for i in slate.items)
        return hits / 240

    start = share()
    assert pipeline.online is not None
    for seed in range(4):
        pipeline.online.fold([LoggedEvent(e.seq + 10_000 * (seed + 1), *e[1:]) for e in feedback(pipeline, 60, seed)])
    assert share() > start + 0.1


def test_checkpoint_then_the_rest_equals_everything(small_split: tuple[Dataset, Dataset]) -> None:
    first = build(small_split[0], exploration={"policy": "lints", "pool": 12})
    log = feedback(first, 30)
    assert first.online is not None
    first.online.fold(log[:50])
    cursor, blob = first.online.checkpoint()
    assert cursor == log[49].seq
    resumed = build(small_split[0], exploration={"policy": "lints", "pool": 12}).online
    assert resumed is not None and resumed.restore(blob) and not resumed.restore(blob)  # an older one is refused
    resumed.fold(log[50:])
    first.online.fold(log[50:])
    assert resumed.describe() == first.online.describe()


def test_two_instances_sharing_one_store_reach_identical_state(small_split: tuple[Dataset, Dataset],
                                                               tmp_path: Path) -> None:
    from rankstack.events import Event
    from rankstack.serving.online_learning import PolicyFollower

    store = SQLiteStateStore(tmp_path / "state.db")
    a = build(small_split[0], exploration={"policy": "squarecb", "pool": 12})
    b = build(small_split[0], exploration={"policy": "squarecb", "pool": 12})
    assert a.online is not None and b.online is not None
    log = feedback(a, 30)
    half = len(log) // 2
    to_event = [Event(event_id=f"e{e.seq}", user_id=e.user_id, item_id=e.item_id, event=e.event) for e in log]
    store.add_events(to_event[:half])
    fa, fb = PolicyFollower(a.online, store), PolicyFollower(b.online, store)
    fa.step()
    fa._checkpoint()
    store.add_events(to_event[half:])
    while fa.step():
        pass
    fb._restore()  # b starts from a's checkpoint, then folds the rest of the log
    assert b.online.cursor > 0
    while fb.step():
        pass
    assert a.online.describe() == b.online.describe()
    assert a.online.state.stats.events == len(log)
    store.close()


def test_features_are_saved_with_the_artifact(small_split: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    pipeline = build(small_split[0], exploration={"policy": "bernoulli_ts", "pool": 12, "learning": {"dim": 4}})
    out = save_artifact(pipeline.parts, manifest_for(pipeline), tmp_path / "art")
    loaded = Pipeline.load(out)
    assert loaded.online is not None and pipeline.online is not None
    assert loaded.online.key == pipeline.online.key
    assert (out / "policy" / "features.safetensors").is_file()
    (out / "policy" / "features.safetensors").write_bytes(b"broken")
    with pytest.raises(ArtifactError):
        Pipeline.load(out)


@pytest.mark.parametrize(("exploration", "expected"), [
    ({"policy": "linucb", "learning": {"alpha": -1}}, "field 'exploration.learning.alpha'"),
    ({"policy": "lints", "learning": {"v": 0}}, "field 'exploration.learning.v'"),
    ({"policy": "squarecb", "learning": {"gama": 3}}, "field 'exploration.learning': unknown field 'gama'"),
    ({"policy": "bernoulli_ts", "learning": {"beta_prior": [0, 1]}}, "Beta prior parameters must be > 0"),
    ({"policy": "linucb", "learning": {"click_reward": 0.5}}, "field 'exploration.learning.click_reward'"),
    ({"policy": "greedy", "learning": {"alpha": 1}}, "but policy is 'greedy'"),
    ({"policy": "ucb"}, "field 'exploration.policy'"),
])
def test_bad_learning_settings_name_the_field(exploration: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_pipeline_config(config_dict(exploration=exploration), "p.yaml")


def logged_impressions() -> Dataset:
    """Impressions of 4 items per user with clicks on the user's group, plus conversions (reward 0 by default)."""
    import polars as pl

    rows = []
    for u in range(30):
        for t, i in enumerate(range(u % 5, 40, 10)):
            rows.append((f"u{u}", f"i{i}", "impression", 1_700_000_000 + 60 * t))
            if i % 4 == u % 4:
                rows += [(f"u{u}", f"i{i}", "click", 1_700_000_001 + 60 * t),
                         (f"u{u}", f"i{i}", "conversion", 1_700_000_002 + 60 * t)]
    return Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "event", "timestamp"], orient="row"),
                               name="logged")


def test_the_training_log_warm_starts_the_saved_state(tmp_path: Path) -> None:
    data = logged_impressions()
    kinds = data.events.get_column("event").to_list()
    pipeline = build(data, exploration={"policy": "linucb", "pool": 8, "learning": {"dim": 3}})
    online = pipeline.online
    assert online is not None and pipeline.parts.policy is not None and pipeline.parts.policy.initial is not None
    stats = online.state.stats
    assert stats.events == kinds.count("impression") + kinds.count("click")  # conversions reward 0: not counted
    assert int(stats.pulls.sum()) == kinds.count("impression") and int(stats.wins.sum()) == kinds.count("click")
    assert stats.cursor == 0  # the store's log is folded on top of it from its start
    loaded = Pipeline.load(save_artifact(pipeline.parts, manifest_for(pipeline), tmp_path / "art"))
    assert loaded.online is not None and (tmp_path / "art" / "policy" / "state.safetensors").is_file()
    assert loaded.online.describe() == online.describe()
    cold = build(data, exploration={"policy": "linucb", "pool": 8, "learning": {"dim": 3, "warm_start": False}})
    assert cold.online is not None and cold.online.state.stats.events == 0 and cold.online.key != online.key


TINY_SASREC = {"epochs": 2, "hidden_dim": 16, "max_len": 10, "blocks": 1, "validation": False, "batch_size": 64,
               "device": "cpu", "seed": 0}
NEURAL_LINEAR = {"policy": "neural_linear", "pool": 12, "learning": {"representation": "sasrec", "dim": 4}}


@pytest.fixture(scope="module")
def neural_linear(small_split: tuple[Dataset, Dataset], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline whose sequential ranker is a tiny SASRec and whose policy is NeuralLinear over it, saved."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline = build(small_split[0], ranker={"source": "sasrec", "settings": TINY_SASREC},
                         exploration=NEURAL_LINEAR)
    finally:
        torch.set_num_threads(threads)
    return save_artifact(pipeline.parts, manifest_for(pipeline), tmp_path_factory.mktemp("nl") / "art")


def test_neural_linear_features_are_the_rankers_projected_vectors(small_split: tuple[Dataset, Dataset],
                                                                  neural_linear: Path) -> None:
    from rankstack.experiments.policy_representation import representation_features
    from rankstack.ranking.sequential import SequentialRanker

    pipeline = Pipeline.load(neural_linear)
    assert isinstance(pipeline.parts.ranker, SequentialRanker) and pipeline.parts.policy is not None
    again = representation_features(pipeline.parts.ranker.source, len(pipeline.parts.user_map), 4)
    np.testing.assert_array_equal(again.items, pipeline.parts.policy.items)  # the loaded ranker's item table
    assert np.abs(again.users.astype(int) - pipeline.parts.policy.users).max() <= 1
    svd = build(small_split[0], exploration={"policy": "lints", "pool": 12, "learning": {"dim": 4}})
    assert svd.online is not None and pipeline.online is not None and svd.online.key != pipeline.online.key


def test_any_vector_source_of_the_pipeline_can_be_the_representation(small_split: tuple[Dataset, Dataset]) -> None:
    """ALS as a candidate source: the features are its own factors, projected."""
    from rankstack.experiments.policy_representation import project_vectors

    als = {"name": "als", "settings": {"factors": 6, "iterations": 3, "num_threads": 1, "device": "cpu"}, "k": 20}
    pipeline = build(small_split[0], sources=[{"name": "popular", "k": 20, "quota": 5}, als],
                     exploration={"policy": "linucb", "pool": 12, "learning": {"representation": "als", "dim": 4}})
    source, features = pipeline.parts.sources["als"], pipeline.parts.policy
    assert features is not None and hasattr(source, "user_vectors") and hasattr(source, "item_vectors")
    users = source.user_vectors(np.arange(len(pipeline.parts.user_map))).numpy()
    x, y = project_vectors(users, source.item_vectors().numpy(), 4)
    np.testing.assert_array_equal(features.users, x)
    np.testing.assert_array_equal(features.items, y)


def test_neural_linear_round_trips_the_artifact(small_split: tuple[Dataset, Dataset], neural_linear: Path,
                                               tmp_path: Path) -> None:
    first = Pipeline.load(neural_linear)
    resaved = save_artifact(first.parts, manifest_for(first, "small-test-0002"), tmp_path / "again")
    second = Pipeline.load(resaved)
    assert first.online is not None and second.online is not None and first.parts.policy is not None
    assert (neural_linear / "policy" / "features.safetensors").read_bytes() == \
        (resaved / "policy" / "features.safetensors").read_bytes()
    pool = np.arange(12)
    for internal in (0, 5, -1):
        np.testing.assert_array_equal(first.online.features.phi(internal, pool),
                                      second.online.features.phi(internal, pool))
    assert not first.parts.policy.phi(-1, pool)[:, 5:].any()  # an unknown user: x = 0, only the item part
    for user in ("u1", "u7", "stranger"):
        a, b = (p.recommend([RecommendRequest(user_id=user, k=5, request_id="q")])[0] for p in (first, second))
        assert [(i.item_id, i.propensity) for i in a.items] == [(i.item_id, i.propensity) for i in b.items]
        assert all(i.propensity is not None and 0 < i.propensity <= 1 for i in a.items)
    assert first.online.describe()["policy"] == "neural_linear"


def test_neural_linear_chunked_folds_equal_one_batch_fold(neural_linear: Path) -> None:
    served = Pipeline.load(neural_linear)
    log = feedback(served, 40)
    batch, chunked = Pipeline.load(neural_linear).online, Pipeline.load(neural_linear).online
    assert batch is not None and chunked is not None
    before = batch.describe()
    batch.fold(log)
    rng = np.random.default_rng(2)
    at = 0
    while at < len(log):
        size = int(rng.integers(1, 25))
        chunked.fold(log[at: at + size])
        chunked.fold(log[max(at - 2, 0): at + size])  # re-delivered rows count nothing
        at += size
    assert chunked.describe() == batch.describe() and batch.describe()["digest"] != before["digest"]


def test_neural_linear_workers_sharing_a_store_reach_identical_state(neural_linear: Path, tmp_path: Path) -> None:
    from rankstack.events import Event
    from rankstack.serving.online_learning import PolicyFollower

    store = SQLiteStateStore(tmp_path / "state.db")
    a, b = Pipeline.load(neural_linear), Pipeline.load(neural_linear)
    assert a.online is not None and b.online is not None
    log = feedback(a, 30)
    events = [Event(event_id=f"e{e.seq}", user_id=e.user_id, item_id=e.item_id, event=e.event) for e in log]
    store.add_events(events[: len(events) // 2])
    fa, fb = PolicyFollower(a.online, store), PolicyFollower(b.online, store)
    fa.step()
    fa._checkpoint()
    store.add_events(events[len(events) // 2:])
    while fa.step():
        pass
    fb._restore()  # b resumes from a's checkpoint, then folds the rest
    assert b.online.cursor > 0
    while fb.step():
        pass
    assert a.online.describe() == b.online.describe() and a.online.state.stats.events == len(log)
    user = RecommendRequest(user_id="u3", k=4, request_id="after")
    assert [i.item_id for i in a.recommend([user])[0].items] == [i.item_id for i in b.recommend([user])[0].items]
    store.close()


@pytest.mark.parametrize(("exploration", "ranker", "expected"), [
    ({"policy": "neural_linear"}, None, "policy 'neural_linear' is Thompson sampling over a learned network"),
    ({"policy": "neural_linear", "learning": {"representation": "svd"}}, None, "set learning.representation"),
    ({"policy": "lints", "learning": {"representation": "bert"}}, None,
     "field 'exploration.learning.representation': unknown representation 'bert'"),
    ({"policy": "linucb", "learning": {"representation": "itemknn"}}, None,
     "unknown representation 'itemknn'; expected 'svd' or a source with user/item vectors"),
    ({"policy": "neural_linear", "learning": {"representation": "sasrec"}}, None,
     "exploration.learning.representation: 'sasrec' is not fitted by this pipeline"),
    ({"policy": "neural_linear", "learning": {"representation": "two-tower"}}, {"source": "sasrec"},
     "'two-tower' is not fitted by this pipeline: expected one of the sources .* or the sequential ranker's source"),
])
def test_bad_representations_name_the_key(exploration: dict[str, object], ranker: dict[str, object] | None,
                                          expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_pipeline_config(config_dict(exploration=exploration, ranker=ranker), "p.yaml")


def test_a_representation_may_be_a_source_or_the_sequential_ranker() -> None:
    as_source = config_dict(exploration=NEURAL_LINEAR, sources=[{"name": "popular", "k": 20, "quota": 5},
                                                                {"name": "sasrec", "k": 20, "quota": 5}])
    assert validate_pipeline_config(as_source).exploration.learning.representation == "sasrec"  # type: ignore[union-attr]
    as_ranker = config_dict(exploration=NEURAL_LINEAR, ranker={"source": "sasrec"})
    assert validate_pipeline_config(as_ranker).exploration.policy == "neural_linear"
    plain = validate_pipeline_config(config_dict(exploration={"policy": "lints"}))
    assert plain.exploration.learning is not None and plain.exploration.learning.representation == "svd"
