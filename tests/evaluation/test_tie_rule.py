"""One tie rule on every path: among equal scores the lower internal item id ranks first, so the evaluator, every
``retrieve``, the exact vector index and ``evaluate_recs`` give the same lists and metrics on heavily tied scores."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankstack.candidates import PAD_ITEM, rows_topk
from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator
from rankstack.index.exact import ExactIndex
from rankstack.index.topk import topk_lowest_id
from rankstack.retrieval.indexed import IndexedRetriever
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource, SourceConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TiedVectors(CandidateSource):
    """score(u, i) = ⟨user_vec[u], item_vec[i]⟩ with small integer vectors: exact in float32, and heavily tied."""

    name = "tied"
    config_class = SourceConfig

    def __init__(self, users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix) -> None:
        super().__init__()
        self.users, self.items, self.train_ = users, items, seen

    def fit(self, dataset: Dataset) -> TiedVectors:
        """Nothing to learn."""
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Integer-valued inner products [users, items]."""
        return self.user_vectors(user_ids) @ self.item_vectors().T

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """The given user vectors."""
        return torch.from_numpy(self.users[np.asarray(user_ids)])

    def item_vectors(self) -> torch.Tensor:
        """The given item vectors."""
        return torch.from_numpy(self.items)


def reference(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """The rule written out: per user, unseen items by (score descending, item id ascending), first k, -1 pads."""
    out = np.full((scores.shape[0], k), PAD_ITEM, np.int64)
    for row in range(scores.shape[0]):
        allowed = np.setdiff1d(np.arange(scores.shape[1]), seen[row].indices)
        ranked = allowed[np.lexsort((allowed, -scores[row, allowed]))][:k]
        out[row, : len(ranked)] = ranked
    return out


def full_rows(recs: np.ndarray, user_ids: np.ndarray, n_users: int) -> np.ndarray:
    """Lists of some users as the [n_users, k] matrix ``Evaluator.evaluate_recs`` reads (-1 rows elsewhere)."""
    out = np.full((n_users, recs.shape[1]), PAD_ITEM, np.int64)
    out[user_ids] = recs
    return out


@st.composite
def tied_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, sp.csr_matrix, int]:
    """(user vectors, item vectors, seen, held out, k): entries in {-1, 0, 1}, so scores take ≤ 5 values."""
    n_users, n_items, dim = draw(st.integers(1, 6)), draw(st.integers(1, 30)), draw(st.integers(1, 2))
    small = st.integers(-1, 1)
    users = draw(arrays(np.float32, (n_users, dim), elements=small))
    items = draw(arrays(np.float32, (n_items, dim), elements=small))
    cells = draw(arrays(np.int8, (n_users, n_items), elements=st.integers(0, 3)))  # 1 seen, 2 held out
    seen = sp.csr_matrix((cells == 1).astype(np.float32))
    held = (cells == 2).astype(np.float32)
    held[np.arange(n_users), draw(st.integers(0, n_items - 1))] = 1.0  # every user has a held-out item
    held[cells == 1] = 0.0
    return users, items, seen, sp.csr_matrix(held), draw(st.integers(1, n_items + 3))


@settings(max_examples=150, deadline=None)
@given(tied_problems())
def test_every_path_ranks_ties_by_lower_item_id(problem: tuple) -> None:
    users, items, seen, held, k = problem
    source = TiedVectors(users, items, seen)
    expected = reference(users @ items.T, seen, k)
    evaluator = Evaluator(seen, held, ks=[k], device="cpu")
    user_ids = evaluator.user_ids
    want = expected[user_ids]
    np.testing.assert_array_equal(evaluator.recommend(source, user_ids), want)
    np.testing.assert_array_equal(source.retrieve(user_ids, k).item_ids, want)
    np.testing.assert_array_equal(IndexedRetriever(source, ExactIndex()).retrieve(user_ids, k).item_ids, want)
    assert evaluator.evaluate(source) == evaluator.evaluate_recs(full_rows(want, user_ids, seen.shape[0]))


@settings(max_examples=100, deadline=None)
@given(arrays(np.int8, st.tuples(st.integers(1, 5), st.integers(1, 40)), elements=st.integers(-2, 2)),
       st.integers(0, 45))
def test_topk_lowest_id_matches_a_stable_sort(scores: np.ndarray, k: int) -> None:
    k = min(k, scores.shape[1])
    values, ids = topk_lowest_id(torch.from_numpy(scores.astype(np.float32)), k)
    order = np.argsort(-scores.astype(np.int64), axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(ids.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(scores, order, axis=1))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 40)), elements=st.integers(0, 3)),
       st.integers(1, 45))
def test_sparse_top_k_keeps_the_evaluator_order_on_its_positive_scores(scores: np.ndarray, k: int) -> None:
    ids, _ = rows_topk(scores, k)  # item-kNN's retrieve: only items with a positive score, short rows padded
    _, full = topk_lowest_id(torch.from_numpy(scores), min(k, scores.shape[1]))
    for row in range(len(scores)):
        kept = ids[row][ids[row] >= 0]
        np.testing.assert_array_equal(kept, full.numpy()[row, : len(kept)])
        assert len(kept) == min(k, int((scores[row] > 0).sum()))


def tied_dataset(pairs: list[tuple[int, int]]) -> Dataset:
    """A dataset of (user, item) pairs with integer external ids (internal ids follow the sorted external ids)."""
    frame = pl.DataFrame(pairs, schema=["user_id", "item_id"], orient="row").unique(maintain_order=True)
    return Dataset.from_events(frame, name="tied")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 11)), min_size=1, max_size=60), st.integers(1, 14))
def test_most_popular_retrieve_equals_the_evaluator(pairs: list[tuple[int, int]], k: int) -> None:
    data = tied_dataset(pairs)
    model = MostPopular().fit(data)
    seen = data.interaction_matrix()
    unseen = sp.csr_matrix(1.0 - seen.toarray())  # every unseen item is held out: all users are evaluated
    evaluator = Evaluator(seen, unseen, ks=[k], device="cpu")
    user_ids = evaluator.user_ids
    direct = evaluator.recommend(model, user_ids)
    np.testing.assert_array_equal(model.retrieve(user_ids, k).item_ids, direct)
    counts = np.tile(model.item_counts_.numpy(), (seen.shape[0], 1))
    np.testing.assert_array_equal(direct, reference(counts, seen, k)[user_ids])


def test_item_knn_retrieve_is_the_evaluator_list_up_to_its_positive_scores() -> None:
    pairs = [(u, i) for u in range(12) for i in range(10) if (u * 7 + i * 3) % 5 < 2]
    data = tied_dataset(pairs)
    model = ItemKNN().fit(data)
    seen = data.interaction_matrix()
    evaluator = Evaluator(seen, sp.csr_matrix(1.0 - seen.toarray()), ks=[8], device="cpu")
    ids = model.retrieve(evaluator.user_ids, 8).item_ids
    direct = evaluator.recommend(model, evaluator.user_ids)
    assert (ids < 0).any()  # some users have fewer than 8 items with a positive score
    for row in range(len(ids)):
        kept = ids[row][ids[row] >= 0]
        np.testing.assert_array_equal(kept, direct[row, : len(kept)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_rule_holds_on_cuda_too() -> None:
    scores = torch.randint(0, 4, (64, 500), generator=torch.Generator().manual_seed(0)).float()
    for k in (1, 20, 499, 500):
        cpu, cuda = topk_lowest_id(scores, k), topk_lowest_id(scores.cuda(), k)
        assert torch.equal(cpu[1], cuda[1].cpu()) and torch.equal(cpu[0], cuda[0].cpu())
