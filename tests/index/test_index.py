"""Vector indexes: exact top-k, inner product (not L2), padding, incremental add, recall of the ANN indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rankstack.index import ExactIndex, VectorIndex
from rankstack.index.faiss_index import FaissHNSWConfig, FaissHNSWIndex, FaissIVFFlatConfig, FaissIVFFlatIndex
from rankstack.pipeline.components import build
from rankstack.testing.indexes import check_vector_index, overlap, unnormalised


def _indexes() -> list[VectorIndex]:
    return [
        ExactIndex(),
        FaissHNSWIndex(FaissHNSWConfig(m=16, ef_search=200)),
        FaissHNSWIndex(FaissHNSWConfig(m=16, ef_search=400, mips_to_l2=False)),
        FaissIVFFlatIndex(FaissIVFFlatConfig(nlist=8, nprobe=8)),
    ]


INDEXES = ["exact", "hnsw", "hnsw-ip", "ivf"]


@pytest.mark.parametrize("at", range(4), ids=INDEXES)
def test_every_index_passes_the_conformance_suite(at: int, tmp_path: Path) -> None:
    """Inner product not L2, tie rule, -1 padding, incremental add (exact and HNSW), write/read round trip."""
    check_vector_index(lambda: _indexes()[at], save_to=tmp_path / "ix", incremental=at < 2)


def test_the_two_similarities_really_disagree_on_the_suite_data() -> None:
    x, q = unnormalised()
    ip = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    l2 = np.argsort(((q[:, None, :] - x[None]) ** 2).sum(-1), axis=1)[:, :10]
    assert overlap(ip, l2) < 0.5


def test_exact_index_matches_brute_force_and_is_exact() -> None:
    x, q = unnormalised(seed=1)
    index = ExactIndex()
    index.config.batch_size = 7
    _scores, ids = index.build(torch.from_numpy(x)).search(q, 5)
    expected = np.argsort(-(q @ x.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    assert index.is_exact() and not FaissHNSWIndex().is_exact() and not FaissIVFFlatIndex().is_exact()


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


@pytest.mark.parametrize("at", [1, 3], ids=["hnsw", "ivf"])
def test_a_saved_index_over_other_vectors_or_missing_is_refused(at: int, tmp_path: Path) -> None:
    x, _ = unnormalised(n=400)
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
