"""A tiny trained pipeline artifact for tests and benchmark smoke runs: popular + item-kNN, epsilon-greedy.

Needs nothing but the library; built in about a second. The library itself never imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.config import validate_pipeline_config

N_USERS, N_ITEMS = 40, 30


def tiny_dataset() -> Dataset:
    """Users in three taste groups, each clicking six items mostly of its group, one minute apart."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(N_USERS):
        mine = [i for i in range(N_ITEMS) if i % 3 == u % 3]
        for t, i in enumerate(rng.choice(mine, size=6, replace=False)):
            rows.append((f"user{u}", f"item{i}", 1_750_000_000 + 60 * t))
    return Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
                               name="tiny")


def tiny_pipeline_artifact(folder: Path, *, exploration: dict[str, Any] | None = None,
                           version: str = "tiny-0001") -> Path:
    """Train the tiny popular + item-kNN pipeline and save it as ``folder``; its exploration stage is
    ``exploration`` (default: epsilon-greedy, epsilon 0.2, a pool of 10)."""
    config = validate_pipeline_config({
        "name": "tiny", "data": {"name": "tiny"},
        "sources": [{"name": "popular", "k": 15, "quota": 5},
                    {"name": "itemknn", "settings": {"neighbors": 10}, "k": 15, "quota": 10}],
        "merge": {"k": 20},
        "exploration": exploration or {"policy": "epsilon_greedy", "epsilon": 0.2, "pool": 10, "seed": 3},
        "deadlines_ms": {"retrieval": 30_000, "ranker": 30_000, "rerank": 30_000},
        "evaluation": {"ks": [5], "funnel_ks": [10]},
    })
    parts = fit_stages(config, tiny_dataset(), lambda _m: None)
    manifest = {"version": version, "name": "tiny", "created_at": "2026-01-01T00:00:00+00:00",
                "config": config.model_dump(mode="json"), "data": {"name": "tiny"}, "metrics": {"pipeline": {}}}
    return save_artifact(parts, manifest, folder)
