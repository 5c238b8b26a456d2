"""Vector indexes: exact top-k, inner product (not L2), padding, incremental add, recall of the ANN indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rankstack.index import ExactIndex, VectorIndex
from rankstack.index.faiss_index import FaissHNSWConfig, FaissHNSWIndex, FaissIVFFlatConfig, FaissIVFFlatIndex
from rankstack.pipeline.components import build


def _unnormalised(n: int = 600, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vectors whose norms vary 30-fold, so L2 and inner-product neighbours differ."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x *= rng.uniform(0.1, 3.0, (n, 1)).astype(np.float32)
    q = rng.standard_normal((20, dim)).astype(np.float32)
    return x, q


def _indexes() -> list[VectorIndex]:
    return [
        ExactIndex(),
        FaissHNSWIndex(FaissHNSWConfig(m=16, ef_search=200)),
        FaissHNSWIndex(FaissHNSWConfig(m=16, ef_search=400, mips_to_l2=False)),
        FaissIVFFlatIndex(FaissIVFFlatConfig(nlist=8, nprobe=8)),
    ]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(r) & set(s)) / len(r) for r, s in zip(a, b, strict=True)]))


@pytest.mark.parametrize("index", _indexes(), ids=lambda i: type(i).__name__)
def test_index_searches_by_inner_product_not_l2(index: VectorIndex) -> None:
    x, q = _unnormalised()
    ip = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    l2 = np.argsort(((q[:, None, :] - x[None]) ** 2).sum(-1), axis=1)[:, :10]
    assert _overlap(ip, l2) < 0.5  # the two similarities really disagree on this data
    scores, ids = index.build(x).search(q, 10)
    assert _overlap(ids, ip) >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, ids, axis=1), rtol=1e-4, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-5).all()
    assert index.metric == "inner_product"


def test_exact_index_matches_brute_force_and_is_exact() -> None:
    x, q = _unnormalised(seed=1)
    index = ExactIndex()
    index.config.batch_size = 7
    _scores, ids = index.build(torch.from_numpy(x)).search(q, 5)
    expected = np.argsort(-(q @ x.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    assert index.is_exact() and not FaissHNSWIndex().is_exact() and not FaissIVFFlatIndex().is_exact()


@pytest.mark.parametrize("index", _indexes(), ids=lambda i: type(i).__name__)
def test_tied_scores_come_back_lower_id_first(index: VectorIndex) -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(-1, 2, (300, 2)).astype(np.float32)  # 9 distinct vectors: every score is shared by many
    q = rng.integers(-1, 2, (10, 2)).astype(np.float32)
    scores, ids = index.build(x).search(q, 40)
    for row in range(len(q)):  # what comes back is ordered by (score descending, id ascending)
        found = ids[row][ids[row] >= 0]
        assert found.tolist() == found[np.lexsort((found, -scores[row][: len(found)]))].tolist()
    if index.is_exact():
        np.testing.assert_array_equal(ids, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :40])


@pytest.mark.parametrize("index", _indexes(), ids=lambda i: type(i).__name__)
def test_short_catalogs_pad_with_minus_one(index: VectorIndex) -> None:
    x, q = _unnormalised(n=40, seed=2)
    scores, ids = index.build(x[:3]).search(q[:2], 5)
    assert ids.shape == (2, 5) and (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("index", _indexes()[:2], ids=lambda i: type(i).__name__)
def test_add_continues_ids_and_longer_vectors_stay_findable(index: VectorIndex) -> None:
    x, q = _unnormalised(n=200, seed=3)
    index.build(x[:100])
    big = x[100:] * 10.0  # longer than every vector so far: the MIPS augmentation must be rebuilt
    index.add(big)
    assert index.ntotal == 200
    _, ids = index.search(q, 5)
    expected = np.argsort(-(q @ np.vstack([x[:100], big]).T), axis=1)[:, :5]
    assert _overlap(ids, expected) >= 0.95


def test_bad_inputs_are_rejected() -> None:
    index = ExactIndex()
    with pytest.raises(RuntimeError, match="empty"):
        index.search(np.zeros((1, 4), np.float32), 1)
    index.build(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="dim"):
        index.search(np.zeros((1, 5), np.float32), 1)
    with pytest.raises(ValueError, match="unknown index 'lsh'; available: exact, hnsw, ivf-flat"):
        build("index", "lsh")
    assert isinstance(build("index", "hnsw", {"m": 8}), FaissHNSWIndex)


@pytest.mark.parametrize("at", range(4), ids=["exact", "hnsw", "hnsw-ip", "ivf"])
def test_a_written_index_reads_back_searching_alike(at: int, tmp_path: Path) -> None:
    x, q = _unnormalised(n=400)
    built = _indexes()[at].build(x)
    built.write(tmp_path / "ix")
    read = _indexes()[at].read(tmp_path / "ix", x)
    assert type(read) is type(built)
    assert read.ntotal == built.ntotal == len(x)
    for a, b in zip(built.search(q, 7), read.search(q, 7), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("at", [1, 3], ids=["hnsw", "ivf"])
def test_a_saved_index_over_other_vectors_or_missing_is_refused(at: int, tmp_path: Path) -> None:
    x, _ = _unnormalised(n=400)
    _indexes()[at].build(x).write(tmp_path / "ix")
    with pytest.raises(ValueError, match=r"holds 400 vectors .* the model has 399"):
        _indexes()[at].read(tmp_path / "ix", x[:399])
    with pytest.raises(ValueError, match="missing"):
        _indexes()[at].read(tmp_path / "elsewhere", x)
    saved = next((tmp_path / "ix").iterdir())
    saved.write_bytes(b"not faiss")
    with pytest.raises(ValueError, match="not a readable FAISS index"):
        _indexes()[at].read(tmp_path / "ix", x)


def test_an_empty_faiss_index_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="build it before saving"):
        FaissIVFFlatIndex().write(tmp_path / "ix")
