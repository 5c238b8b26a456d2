"""Sharded evaluation on a local Ray instance (2 CPUs): the same floats as the single-process evaluator."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.dataset import Dataset
from rankstack.data.splits import make_split
from rankstack.distributed.backend import Backend
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.components import build_source

pytestmark = pytest.mark.ray
runner = CliRunner()


def _events(n_users: int = 90, n_items: int = 40, seed: int = 0) -> pl.DataFrame:
    """A timed log where popular items are shared and many scores tie (integer co-counts)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(4, 12)), replace=False, p=None)
        rows += [(f"u{user}", f"i{item}", 1_700_000_000 + 60 * t) for t, item in enumerate(items)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")


@pytest.fixture(scope="module")
def split_parts() -> tuple[Dataset, Dataset]:
    data = Dataset.from_events(_events().with_columns(pl.from_epoch("timestamp")), name="tiny")
    return fit_and_eval_parts(make_split(data, "leave_one_out"), "test")


@pytest.mark.parametrize("model", ["itemknn", "ease"])
def test_sharded_metrics_equal_the_single_process_ones(ray_instance: Any, split_parts: tuple[Dataset, Dataset],
                                                       model: str) -> None:
    from rankstack.distributed.evaluation import evaluate_sharded

    train, held_out = split_parts
    source = build_source(model, {}).fit(train)
    local = Evaluator.from_datasets(train, held_out, ks=(1, 5, 10), batch_size=7).evaluate(source)
    calls: list[int] = []
    sharded = evaluate_sharded(source, train, held_out, (1, 5, 10), Backend("ray", 2), batch_size=7,
                               on_workers=calls.append)
    assert calls == [2]  # 90 users in 13 batches of 7, cut into 8 shards of 11-12 users over 2 workers
    assert sharded == local  # bit for bit: the batch sums are added in the same order
    assert sharded["users_evaluated"] == held_out.events.get_column("user_id").n_unique()
    assert 0 < sharded["recall@10"] < 1  # a real run, not an empty one


@pytest.mark.parametrize("cuts", [[], [3], [5, 10], [1, 2, 3, 50, 89], list(range(1, 90))])
def test_shards_cut_anywhere_merge_to_the_same_floats(split_parts: tuple[Dataset, Dataset], cuts: list[int]) -> None:
    train, held_out = split_parts
    source = build_source("ease", {}).fit(train)
    evaluator = Evaluator.from_datasets(train, held_out, ks=(1, 10), batch_size=10)
    ends = [0, *cuts, len(evaluator.user_ids)]
    shards = [evaluator.shard(source, a, b) for a, b in itertools.pairwise(ends)]
    assert evaluator.merge_shards(shards) == evaluator.evaluate(source)


def test_shards_that_miss_or_repeat_a_batch_are_refused(split_parts: tuple[Dataset, Dataset]) -> None:
    train, held_out = split_parts
    source = build_source("popular", {}).fit(train)
    evaluator = Evaluator.from_datasets(train, held_out, ks=(5,), batch_size=30)
    whole = evaluator.shard(source, 0, 30)
    with pytest.raises(ValueError, match="cover batches"):
        evaluator.merge_shards([whole])
    with pytest.raises(ValueError, match="more than one shard"):
        evaluator.merge_shards([whole, whole, evaluator.shard(source, 30, len(evaluator.user_ids))])


def test_a_model_without_score_is_refused(ray_instance: Any, split_parts: tuple[Dataset, Dataset]) -> None:
    from rankstack.distributed.evaluation import evaluate_sharded
    from rankstack.errors import ConfigError

    train, held_out = split_parts
    with pytest.raises(ConfigError, match="has no score"):
        evaluate_sharded(object(), train, held_out, (5,), Backend("ray", 2))  # type: ignore[arg-type]


def test_the_contract_evaluate_backend_ray_prints_the_local_metrics(ray_instance: Any, tmp_path: Path) -> None:
    """``rankstack evaluate … --json --backend ray --workers 2`` = the same command without ``--backend ray``."""
    log = tmp_path / "events.csv"
    _events(n_users=150, n_items=60, seed=1).write_csv(log)
    base = ["evaluate", "--dataset", str(log), "--model", "ease", "--json", "--runs-dir", str(tmp_path / "runs")]
    local = runner.invoke(app, base)
    assert local.exit_code == 0, local.output
    sharded = runner.invoke(app, [*base, "--backend", "ray", "--workers", "2"])
    assert sharded.exit_code == 0, sharded.output
    a, b = json.loads(local.stdout), json.loads(sharded.stdout)
    assert a["execution"] == {"backend": "local", "workers": 1, "address": None}
    assert b["execution"] == {"backend": "ray", "workers": 2, "address": None}  # both workers scored a shard
    assert a["metrics"].keys() == b["metrics"].keys()
    for key, value in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(value, abs=1e-9), key  # the contract's tolerance
    assert b["metrics"] == a["metrics"]  # and in fact float for float



def test_a_worker_lost_mid_run_is_replaced_and_the_metrics_are_unchanged(
        ray_instance: Any, split_parts: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    from rankstack.distributed.evaluation import evaluate_sharded

    class DiesOnce:  # defined here so that Ray ships it by value (the workers cannot import this test module)
        """Item-kNN whose worker exits hard the first time it scores user ``victim`` (a machine lost mid-run)."""

        def __init__(self, source: Any, victim: int, marker: Path) -> None:
            self.source, self.victim, self.marker = source, victim, marker

        def score(self, users: np.ndarray) -> Any:
            if self.victim in users and not self.marker.exists():
                self.marker.write_text("died once")
                os._exit(1)
            return self.source.score(users)

    train, held_out = split_parts
    source = build_source("itemknn", {}).fit(train)
    local = Evaluator.from_datasets(train, held_out, ks=(10,), batch_size=7).evaluate(source)
    dying = DiesOnce(source, victim=int(np.unique(held_out.events["user_id"])[40]), marker=tmp_path / "died")
    assert evaluate_sharded(dying, train, held_out, (10,), Backend("ray", 2), batch_size=7) == local
    assert (tmp_path / "died").exists()  # the worker did die; its shard was retried on a fresh one
