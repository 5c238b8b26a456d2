"""Every registered source round-trips through save/load (safetensors + JSON, no pickle) with equal outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from planted import planted

from rankstack.pipeline.components import build_source, names, source_class
from rankstack.retrieval.source_files import load_id_maps, load_source, save_source

FAST: dict[str, dict[str, object]] = {
    "lightgcn": {"epochs": 3, "embedding_dim": 8, "device": "cpu", "validation_ratio": 0.0},
    "two-tower": {"epochs": 2, "embedding_dim": 8, "hidden_dim": 16, "history_len": 4, "device": "cpu"},
    "ease": {"device": "cpu"},
}


@pytest.mark.parametrize("name", sorted(names("source")))
def test_round_trip_gives_identical_scores_and_candidates(name: str, tmp_path: Path) -> None:
    train, _ = planted(n_users=30, n_items=20)
    model = build_source(name, FAST.get(name, {})).fit(train)
    out = save_source(model, tmp_path / name, dataset=train)
    assert {p.name for p in out.iterdir()} >= {"source.json", "tensors.safetensors", "user_map.parquet"}
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.pt"))
    record = json.loads((out / "source.json").read_text())
    assert record["name"] == name and record["config"] == model.config.model_dump(mode="json")
    loaded = load_source(out, source_class)
    assert type(loaded) is type(model) and loaded.config == model.config
    users = np.arange(train.n_users)
    np.testing.assert_allclose(loaded.score(users).numpy(), model.score(users).numpy(), rtol=1e-6, atol=1e-6)
    a, b = model.retrieve(users, 5), loaded.retrieve(users, 5)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    maps = load_id_maps(out)
    assert maps is not None and maps[1] == train.item_map


def test_loading_something_else_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "source.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a saved rankstack source"):
        load_source(tmp_path, source_class)
