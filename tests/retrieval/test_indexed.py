"""Retrieval through a vector index gives the source's own top-k (exact index) and never a seen item."""

from __future__ import annotations

import numpy as np
import pytest
from planted import planted

from rankstack.candidates import PAD_ITEM
from rankstack.pipeline.components import build, source_class
from rankstack.retrieval.indexed import IndexedRetriever, has_vectors
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.lightgcn import LightGCN, LightGCNConfig
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource

FAST = {"epochs": 8, "batch_size": 256, "lr": 0.02, "embedding_dim": 16, "device": "cpu", "validation_ratio": 0.0}


@pytest.fixture(scope="module")
def model() -> LightGCN:
    return LightGCN(LightGCNConfig(**FAST)).fit(planted()[0])


@pytest.mark.parametrize(("kind", "params"), [("exact", {}), ("ivf-flat", {"nlist": 4, "nprobe": 4})])
def test_an_exhaustive_index_returns_the_sources_own_top_k(model: LightGCN, kind: str,
                                                            params: dict[str, int]) -> None:
    if kind != "exact":
        pytest.importorskip("faiss")
    users = np.arange(model.train_.shape[0])  # type: ignore[union-attr]
    indexed = IndexedRetriever(model, build("index", kind, params)).retrieve(users, 10)
    direct = CandidateSource.retrieve(model, users, 10)
    np.testing.assert_array_equal(indexed.item_ids, direct.item_ids)
    np.testing.assert_allclose(indexed.scores, direct.scores, rtol=1e-4, atol=1e-5)
    assert indexed.source == "lightgcn"


def test_seen_items_are_removed_and_short_rows_padded(model: LightGCN) -> None:
    train = model.train_.toarray() > 0  # type: ignore[union-attr]
    users = np.arange(train.shape[0])
    n_items = train.shape[1]
    out = IndexedRetriever(model, build("index", "exact")).retrieve(users, n_items)
    for row, user in enumerate(users):
        got = out.item_ids[row][out.item_ids[row] >= 0]
        assert not train[user, got].any()
        assert len(got) == n_items - train[user].sum()  # every unseen item, then padding
        assert (out.item_ids[row][len(got):] == PAD_ITEM).all() and np.isneginf(out.scores[row][len(got):]).all()


def test_only_vector_sources_can_be_indexed() -> None:
    assert all(has_vectors(source_class(n)) for n in ("lightgcn", "two-tower", "sasrec"))
    assert not has_vectors(ItemKNN) and not has_vectors(MostPopular)
    with pytest.raises(TypeError, match="no user/item vectors"):
        IndexedRetriever(MostPopular().fit(planted()[0]), build("index", "exact"))
