"""Full-ranking evaluator: equals a brute-force per-user implementation; batching and inputs agree."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator, default_batch_size

N_USERS, N_ITEMS, DIM = 60, 40, 8
KS = (1, 5, 10)


def random_split(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Disjoint random train/test; user 0 has no test items, user 1 has only 3 items left to rank."""
    rng = np.random.default_rng(seed)
    draw = rng.random((N_USERS, N_ITEMS))
    train = draw < 0.25
    test = (draw >= 0.25) & (draw < 0.4)
    test[0] = False
    train[1] = True
    train[1, [3, 7, 9]] = False
    test[1] = False
    test[1, [7, 20]] = True  # item 20 is a train item too: it can never be recommended
    return sp.csr_matrix(train.astype(np.float32)), sp.csr_matrix(test.astype(np.float32))


def brute_force(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, ks: tuple[int, ...]) -> dict:
    """Per-user Python loop over the metric definitions."""
    sums: dict[str, float] = {}
    seen: dict[int, set[int]] = {k: set() for k in ks}
    train_d, test_d = train.toarray() > 0, test.toarray() > 0
    users = [u for u in range(scores.shape[0]) if test_d[u].any()]
    for u in users:
        allowed = [i for i in np.argsort(-scores[u], kind="stable") if not train_d[u, i]]
        relevant = set(np.flatnonzero(test_d[u]).tolist())
        for k in ks:
            top = allowed[:k]
            seen[k].update(top)
            rel = [1.0 if i in relevant else 0.0 for i in top] + [0.0] * (k - len(top))
            n_hit = sum(rel)
            first = next((pos for pos, r in enumerate(rel) if r), None)
            ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
            ap = sum(sum(rel[: i + 1]) / (i + 1) * rel[i] for i in range(k)) / min(len(relevant), k)
            values = {
                "recall": n_hit / len(relevant),
                "precision": n_hit / k,
                "hr": float(n_hit > 0),
                "ndcg": sum(r / math.log2(i + 2) for i, r in enumerate(rel)) / ideal,
                "mrr": 0.0 if first is None else 1 / (first + 1),
                "map": ap,
            }
            for name, v in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    out = {key: v / len(users) for key, v in sums.items()}
    n_train_items = int(train_d.any(axis=0).sum())
    out.update({f"coverage@{k}": len(seen[k]) / n_train_items for k in ks})
    return out


class MatrixModel:
    """A scorer over a fixed [n_users, n_items] score matrix."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = torch.from_numpy(scores)

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        return self.scores[torch.from_numpy(user_ids)]


@pytest.fixture(scope="module")
def setup() -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    train, test = random_split()
    rng = np.random.default_rng(1)
    return train, test, rng.standard_normal((N_USERS, DIM)), rng.standard_normal((N_ITEMS, DIM))


def test_evaluate_equals_brute_force(setup: tuple) -> None:
    train, test, user_emb, item_emb = setup
    scores = (user_emb @ item_emb.T).astype(np.float32)
    result = Evaluator(train, test, KS, device="cpu").evaluate(MatrixModel(scores))
    expected = brute_force(scores, train, test, KS)
    assert result["users_evaluated"] == N_USERS - 1
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key


def test_train_items_are_never_recommended(setup: tuple) -> None:
    train, test, *_ = setup
    scores = np.where(train.toarray() > 0, 100.0, 0.0).astype(np.float32)  # train items score highest
    scores += np.linspace(0, 1, N_ITEMS, dtype=np.float32)[None, :]
    with_train = Evaluator(train, test, KS, device="cpu").evaluate(MatrixModel(scores))
    without = Evaluator(train, test, KS, device="cpu").evaluate(MatrixModel(scores - 100 * (scores > 50)))
    assert with_train == without


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batch_size_does_not_change_results(setup: tuple, batch_size: int) -> None:
    train, test, user_emb, item_emb = setup
    reference = Evaluator(train, test, KS, batch_size=16, device="cpu").evaluate_embeddings(user_emb, item_emb)
    result = Evaluator(train, test, KS, batch_size=batch_size, device="cpu").evaluate_embeddings(
        user_emb, item_emb
    )
    assert result.keys() == reference.keys()
    for key in reference:
        assert result[key] == pytest.approx(reference[key], abs=1e-12), key


def test_embeddings_model_and_recs_paths_agree(setup: tuple) -> None:
    train, test, user_emb, item_emb = setup
    ev = Evaluator(train, test, KS, device="cpu", item_vectors=item_emb)
    by_emb = ev.evaluate_embeddings(torch.from_numpy(user_emb), item_emb)
    scores = (user_emb.astype(np.float32) @ item_emb.astype(np.float32).T)
    by_model = ev.evaluate(MatrixModel(scores))
    masked = np.where(train.toarray() > 0, -np.inf, scores)
    recs = np.argsort(-masked, axis=1, kind="stable")[:, :4]
    recs[1, 3:] = -1  # user 1 has only 3 items left
    by_recs = ev.evaluate_recs(recs)  # shorter than max(ks): padded with -1
    assert by_emb.keys() == by_model.keys() == by_recs.keys()
    assert {"novelty@10", "ild@10"} <= by_emb.keys()
    for key in by_emb:
        assert by_emb[key] == pytest.approx(by_model[key], abs=1e-9), key
    for key in ("recall@1", "ndcg@1", "map@1", "hr@1", "ild@1", "novelty@1", "coverage@1"):
        assert by_recs[key] == pytest.approx(by_model[key], abs=1e-9), key
    assert by_recs["recall@10"] <= by_model["recall@10"]


def test_raw_scores_are_ranked_without_saturation() -> None:
    """Scores that a float32 sigmoid would all map to 1.0 still rank in their true order."""
    train = sp.csr_matrix((2, 4), dtype=np.float32)
    test = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0]], dtype=np.float32))
    scores = np.array([[50, 60, 70, 80], [80, 70, 60, 50]], dtype=np.float32)
    result = Evaluator(train, test, [1], device="cpu").evaluate(MatrixModel(scores))
    assert result["ndcg@1"] == 1.0 and result["mrr@1"] == 1.0


def test_from_datasets_uses_interaction_matrices() -> None:
    events = pl.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "item_id": [1, 2, 2, 3, 1]})
    full = Dataset.from_events(events, name="toy")
    first = full.item_map.to_internal([1])[0]  # events hold internal ids
    train = full.with_events(full.events.filter(pl.col("item_id") != first))
    test = full.with_events(full.events.filter(pl.col("item_id") == first))
    ev = Evaluator.from_datasets(train, test, ks=[1, 2], device="cpu")
    assert (ev.n_users, ev.n_items) == (3, 3)
    assert ev.user_ids.tolist() == [0, 2]
    result = ev.evaluate_embeddings(np.ones((3, 1)), np.array([[3.0], [2.0], [1.0]]))
    assert result["hr@1"] == pytest.approx(1.0)  # item 1 (internal 0) ranks first for a and c


def test_progress_bar_and_argument_checks(setup: tuple) -> None:
    train, test, user_emb, item_emb = setup
    quiet = Evaluator(train, test, KS, device="cpu").evaluate_embeddings(user_emb, item_emb)
    loud = Evaluator(train, test, KS, batch_size=9, device="cpu", progress=True)
    assert loud.evaluate_embeddings(user_emb, item_emb) == pytest.approx(quiet)
    with pytest.raises(ValueError, match="shapes"):
        Evaluator(train, test[:5], KS)
    with pytest.raises(ValueError, match="k must"):
        Evaluator(train, test, [0])
    with pytest.raises(ValueError, match="item rows"):
        Evaluator(train, test, KS).evaluate_embeddings(user_emb, item_emb[:5])
    with pytest.raises(TypeError, match="score"):
        Evaluator(train, test, KS).evaluate(object())  # type: ignore[arg-type]
    assert default_batch_size(40_981) == 1024
    assert default_batch_size(10_000_000) == 6


class _CachedScores:
    """A scorer returning the same tensor every call (so the evaluator must not mask it in place)."""

    def __init__(self, scores: torch.Tensor, fresh: bool) -> None:
        self.scores, self.fresh_scores = scores, fresh

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Rows of the cached matrix (a fresh copy when ``fresh_scores``)."""
        rows = self.scores[torch.from_numpy(np.asarray(user_ids))]
        return rows.clone() if self.fresh_scores else rows


def test_fresh_scores_are_masked_in_place_with_the_same_metrics() -> None:
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((30, 25)) < 0.2).astype(np.float32))
    test = sp.csr_matrix(((rng.random((30, 25)) < 0.1) & (train.toarray() == 0)).astype(np.float32))
    scores = torch.from_numpy(rng.integers(0, 4, (30, 25)).astype(np.float32))  # many ties
    evaluator = Evaluator(train, test, ks=(3, 10), batch_size=7, device="cpu")
    kept = scores.clone()
    copied = evaluator.evaluate(_CachedScores(scores, fresh=False))
    assert torch.equal(scores, kept)  # not fresh: never written
    assert evaluator.evaluate(_CachedScores(scores, fresh=True)) == copied
