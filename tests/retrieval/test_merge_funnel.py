"""Candidate merging (quotas, fusion, attribution) and funnel recall against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from rankstack.candidates import Candidates
from rankstack.data.dataset import Dataset
from rankstack.retrieval.funnel import MERGED, candidate_recall, funnel_recall
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.merge import MergeConfig, equal_quotas, merge_candidates, merge_rows
from rankstack.retrieval.popular import MostPopular


def _cands(ids: list[list[int]], name: str) -> Candidates:
    arr = np.array(ids, dtype=np.int64)
    scores = np.where(arr >= 0, -np.arange(arr.shape[1], dtype=np.float32)[None, :] + 10.0, -np.inf)
    return Candidates(arr, scores.astype(np.float32), source=name)


def test_merge_deduplicates_and_keeps_attribution() -> None:
    a = _cands([[1, 2, 3], [7, 8, -1]], "a")
    b = _cands([[3, 4, 1], [9, 7, 8]], "b")
    merged = merge_candidates([a, b], MergeConfig(k=5, rrf_k=0.0))
    # row 0: fused 1 = 1/1 + 1/3, 3 = 1/3 + 1/1, 2 = 1/2, 4 = 1/2 → 1 and 3 tie first, then 2 and 4
    assert set(merged.item_ids[0, :2]) == {1, 3} and set(merged.item_ids[0, 2:4]) == {2, 4}
    assert merged.item_ids[0, 4] == -1 and np.isneginf(merged.scores[0, 4])
    row = list(merged.item_ids[0])
    i3 = row.index(3)
    np.testing.assert_allclose(merged.scores[0, i3], 1 / 3 + 1.0)
    assert merged.source_ranks[0, i3].tolist() == [2, 0]
    np.testing.assert_allclose(merged.source_scores[0, i3], [8.0, 10.0])
    i2 = row.index(2)
    assert merged.proposed_by[0, i2].tolist() == [True, False] and np.isnan(merged.source_scores[0, i2, 1])
    # row 1: 7 (1/1+1/2) > 8 (1/2+1/3) > 9 (1/1)? 1.5, 0.833, 1.0 → 7, 9, 8
    assert merged.item_ids[1, :3].tolist() == [7, 9, 8]
    feats = merged.features()
    assert feats["a_rank"].shape == (2, 5) and feats["n_sources"][1, 0] == 2
    assert merged.to_candidates().source == "merged"


def test_quotas_guarantee_each_sources_top_items_and_weights_reorder() -> None:
    a = _cands([[1, 2, 3, 4]], "a")
    b = _cands([[5, 6, 7, 8]], "b")
    only_a = merge_candidates([a, b], MergeConfig(k=3, weights={"b": 0.1}))
    assert only_a.item_ids[0].tolist() == [1, 2, 3]
    quota = merge_candidates([a, b], MergeConfig(k=3, quotas={"b": 2}, weights={"b": 0.1}))
    assert set(quota.item_ids[0]) == {5, 6, 1}
    assert equal_quotas(["a", "b", "c"], 100) == {"a": 34, "b": 33, "c": 33}


def test_merge_rejects_bad_inputs() -> None:
    a = _cands([[1]], "a")
    with pytest.raises(ValueError, match="distinct"):
        merge_candidates([a, a])
    with pytest.raises(ValueError, match="not given"):
        merge_candidates([a], MergeConfig(quotas={"z": 1}))
    with pytest.raises(ValueError, match=r"[Ee]xtra"):
        MergeConfig.model_validate({"kk": 1})


def test_candidate_recall_by_hand() -> None:
    truth = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    got = candidate_recall(np.array([[1, 3], [2, -1], [0, 1]]), truth)
    np.testing.assert_allclose(got[:2], [0.5, 0.0])
    assert np.isnan(got[2])


def test_funnel_recall_matches_direct_computation_and_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((60, 50)) < 0.15
    users, items = np.nonzero(mask)
    split = rng.random(len(users)) < 0.25
    full = Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="toy")
    ev = full.events
    train, test = full.with_events(ev.filter(~pl.Series(split))), full.with_events(ev.filter(pl.Series(split)))
    sources = {"popular": MostPopular().fit(train), "itemknn": ItemKNN().fit(train)}
    report = funnel_recall(sources, test, ks=(5, 10, 40), batch_size=7)
    truth = test.interaction_matrix()
    users_t = np.flatnonzero(np.diff(truth.indptr) > 0)
    top = sources["popular"].retrieve(users_t, 40).item_ids[:, :10]  # K=10 is the prefix of the top-40 list
    direct = np.nanmean(candidate_recall(top, truth[users_t]))
    assert report.recall["popular"][10] == pytest.approx(direct)
    for name in [*sources, MERGED]:
        vals = [report.recall[name][k] for k in report.ks]
        assert vals == sorted(vals) and vals[0] >= 0.0 and vals[-1] <= 1.0
    assert report.recall[MERGED][40] >= max(report.recall[n][40] for n in sources) - 0.15
    assert "| merged |" in report.table()
    assert report.plot(tmp_path / "funnel.png").stat().st_size > 1000


def test_merge_rows_equals_the_numpy_merge() -> None:
    """Random lists with padding, repeats within a source, quotas, weights and both rrf_k settings."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        n_rows, n_src, n_items = int(rng.integers(1, 20)), int(rng.integers(1, 5)), int(rng.integers(3, 40))
        cands = []
        for s in range(n_src):
            width = int(rng.integers(1, 12))
            ids = rng.integers(-1, n_items, (n_rows, width))
            ids[rng.random((n_rows, width)) < 0.3] = -1
            scores = -np.sort(-rng.random((n_rows, width)).astype(np.float32), axis=1)
            cands.append(Candidates(ids, np.where(ids < 0, -np.inf, scores).astype(np.float32), f"s{s}"))
        cfg = MergeConfig(k=int(rng.integers(1, 30)), rrf_k=float(rng.choice([0.0, 60.0])),
                          quotas={f"s{s}": int(rng.integers(0, 4)) for s in range(n_src)},
                          weights={f"s{s}": float(rng.choice([0.5, 1.0, 2.0])) for s in range(n_src)})
        want, got = merge_candidates(cands, cfg), merge_rows(cands, cfg)
        for field in ("item_ids", "scores", "source_ranks", "source_scores"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
        assert got.sources == want.sources
