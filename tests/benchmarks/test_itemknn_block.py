"""``benchmarks/itemknn_block.py``: each figure is timed on a small item-kNN, and a pipeline without one is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from rankstack.errors import ConfigError
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.popular import MostPopular

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "itemknn_block.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("itemknn_block", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _matrices(n_users: int = 40, n_items: int = 60, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """A random binary history matrix (user 0 without a history) and random item-item similarities."""
    rng = np.random.default_rng(seed)
    train = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    train[0] = 0.0
    sim = (rng.random((n_items, n_items)) < 0.3) * rng.random((n_items, n_items)).astype(np.float32)
    np.fill_diagonal(sim, 0.0)
    return sp.csr_matrix(train), sp.csr_matrix(sim.astype(np.float32))


def _knn(train: sp.csr_matrix, sim: sp.csr_matrix) -> ItemKNN:
    model = ItemKNN()
    model.train_, model.similarity_ = train, sim
    return model


def test_every_figure_is_timed_and_the_reach_counted(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    train, sim = _matrices()
    monkeypatch.setattr(bench, "_source", lambda artifact: _knn(train, sim))
    got = bench.measure(Path("unused"), users=25, k=10, rounds=2)
    assert got["users"] == 25 and got["items"] == 60 and got["k"] == 10
    assert all(got[key] > 0 for key in ("retrieve_us", "rows_topk_us", "top_candidates_us"))
    reach = np.diff(sim.indptr)
    per_user = [int(reach[train[u].indices].sum()) for u in range(1, 40)]
    assert min(per_user) <= got["reach_median"] <= got["reach_p90"] <= max(per_user)


def test_a_matrix_without_histories_is_refused(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    train, sim = _matrices()
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    monkeypatch.setattr(bench, "_source", lambda artifact: _knn(empty, sim))
    with pytest.raises(ConfigError, match="no user with a history"):
        bench.measure(Path("unused"), users=5, k=3, rounds=1)


def test_an_artifact_without_item_knn_is_named(bench: Any, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    loaded = SimpleNamespace(parts=SimpleNamespace(sources={"popular": MostPopular()}))
    monkeypatch.setattr(bench.Pipeline, "load", lambda artifact: loaded)
    assert bench.main(["some/artifact", "--users", "3"]) == 2
    assert "some/artifact: no item-kNN source among ['popular']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["some/artifact", "--k", "0"])
