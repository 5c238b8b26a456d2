"""Candidate features: hand-checked values on a tiny log, pads left out, statistics round-trip through a file."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.ranking.candidate_features import (
    ItemStats,
    candidate_features,
    feature_names,
    request_times,
    unit_rows,
)
from rankstack.ranking.ranker import RankBatch

T0 = datetime(2020, 1, 1)


def tiny() -> Dataset:
    """Users a, b, c; items x, y, z, w; b and c watch x and y together; z only long ago, w only recently."""
    rows = [("a", "x", 0), ("a", "z", 1), ("b", "x", 100), ("b", "y", 101), ("c", "x", 110), ("c", "y", 111),
            ("c", "w", 119)]
    events = pl.DataFrame([(u, i, T0 + timedelta(days=d)) for u, i, d in rows],
                          schema=["user_id", "item_id", "timestamp"], orient="row")
    genres = pl.DataFrame({"item_id": ["x", "y", "z", "w"], "genres": [["A"], ["A", "B"], ["C"], ["B"]]})
    return Dataset.from_events(events, name="tiny", item_features=genres)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return tiny()


def ids(data: Dataset, *names: str) -> list[int]:
    return [int(i) for i in data.item_map.to_internal(list(names))]


def test_item_stats_count_windows_age_and_cooccurrence(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data, recent_days=30)
    x, y, z, w = ids(data, "x", "y", "z", "w")
    assert stats.pop_all[[x, y, z, w]].tolist() == [3, 2, 1, 1]
    assert stats.pop_recent[[x, y, z, w]].tolist() == [2, 2, 0, 1]  # days 100..119 are within 30 of day 119
    assert stats.age_days[[x, z, w]].tolist() == [119, 118, 0]
    assert stats.cooc[x, y] == 2 and stats.cooc[y, x] == 2 and stats.cooc[x, x] == 0
    assert stats.cooc[x, z] == 1 and stats.cooc[y, z] == 0
    assert stats.attributes.shape == (4, 3)


def test_cooccurrence_keeps_each_items_largest_neighbors(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data, neighbors=1)
    x, y = ids(data, "x", "y")
    assert stats.cooc[x].nnz == 1 and stats.cooc[x, y] == 2


def test_features_of_a_batch(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data, recent_days=30)
    x, y, z, w = ids(data, "x", "y", "z", "w")
    user_b = int(data.user_map.to_internal(["b"])[0])
    items = np.array([[z, w, y, -1]])
    batch = RankBatch(np.array([user_b]), items, [np.array([x])],
                      source_scores={"s": np.array([[np.nan, 0.5, 0.9, np.nan]])})
    matrix, valid = candidate_features(batch, stats, ["s"], seq_scores=np.array([[1.0, 2.0, 3.0, np.nan]]))
    names = feature_names(["s"], True)
    assert valid.tolist() == [[True, True, True, False]]
    assert matrix.shape == (3, len(names))
    col = {n: matrix[:, j] for j, n in enumerate(names)}
    assert np.isnan(col["score_s"][0]) and col["score_s"][1:].tolist() == pytest.approx([0.5, 0.9])
    assert np.isnan(col["rank_s"][0]) and col["rank_s"][1:].tolist() == [2, 1]
    assert col["proposed_s"].tolist() == [0, 1, 1] and col["n_proposed"].tolist() == [0, 1, 1]
    assert col["merged_rank"].tolist() == [0, 1, 2]
    assert col["pop_all"].tolist() == pytest.approx(np.log1p([1, 1, 2]).tolist())
    assert col["cooc_sum"].tolist() == [1, 1, 2]  # x with z (user a), w (user c), y (users b, c)
    assert col["cooc_cos"][2] == pytest.approx(2 / np.sqrt(3 * 2))
    assert col["genre_match"].tolist() == [0, 0, 1]  # x is A: shares a genre with y only
    assert col["user_events"].tolist() == [2, 2, 2] and col["history_len"].tolist() == [1, 1, 1]
    assert col["seq_score"].tolist() == [1, 2, 3]


def test_unknown_user_and_empty_history_get_zeros(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data)
    batch = RankBatch(np.array([-1]), np.array([[0, 1]]), [np.zeros(0, np.int64)])
    matrix, _ = candidate_features(batch, stats, [])
    col = dict(zip(feature_names([], False), matrix.T, strict=True))
    assert col["user_events"].tolist() == [0, 0] and col["cooc_sum"].tolist() == [0, 0]


def test_stats_round_trip_through_a_file(data: Dataset, tmp_path: Path) -> None:
    stats = ItemStats.from_dataset(data)
    stats.save(tmp_path / "stats.safetensors")
    back = ItemStats.load(tmp_path / "stats.safetensors")
    for name in ("pop_all", "pop_recent", "age_days", "user_events"):
        assert np.array_equal(getattr(back, name), getattr(stats, name), equal_nan=True)
    assert (back.cooc != stats.cooc).nnz == 0 and (back.attributes != stats.attributes).nnz == 0
    assert (back.trans != stats.trans).nnz == 0 and np.array_equal(back.trans_out, stats.trans_out)
    assert back.recent_share == stats.recent_share
    assert back.user_last is not None and stats.user_last is not None
    assert np.array_equal(back.user_last, stats.user_last, equal_nan=True)


def epoch(day: float) -> float:
    return (T0 + timedelta(days=day)).timestamp()


def test_stats_keep_each_users_latest_event_time(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data)
    users = data.user_map.to_internal(["a", "b", "c"])
    assert stats.last_times(np.r_[users, -1, 99]).tolist() == pytest.approx(
        [epoch(1), epoch(101), epoch(119), np.nan, np.nan], nan_ok=True)


def test_request_times_are_each_users_earliest_event(data: Dataset) -> None:
    times = request_times(data.events, data.n_users)
    users = data.user_map.to_internal(["a", "b", "c"])
    assert times[users].tolist() == pytest.approx([epoch(0), epoch(100), epoch(110)])
    assert np.isnan(request_times(data.events.drop("timestamp"), data.n_users)).all()


def test_since_last_days_reads_the_window_and_the_fresh_events(data: Dataset) -> None:
    """Row 1: from the window's last event; row 2: a fresh event is later; row 3: no request time; row 4: an
    unknown user with a fresh event; row 5: a fresh event after the request time counts as 0 days."""
    stats = ItemStats.from_dataset(data)
    a, b, c = (int(u) for u in data.user_map.to_internal(["a", "b", "c"]))
    batch = RankBatch(np.array([a, b, c, -1, a]), np.array([[0, 1]] * 5), [np.zeros(0, np.int64)] * 5,
                      times=np.array([epoch(3), epoch(130), np.nan, epoch(200), epoch(5)]),
                      fresh_times=np.array([np.nan, epoch(120), epoch(119), epoch(199.5), epoch(6)]))
    matrix, _ = candidate_features(batch, stats, [], recency=True)
    names = feature_names([], False, recency=True)
    assert names[-1] == "since_last_days" and matrix.shape == (10, len(names))
    since = matrix[::2, -1]
    assert since.tolist() == pytest.approx([2.0, 10.0, np.nan, 0.5, 0.0], nan_ok=True)
    untimed, _ = candidate_features(RankBatch(np.array([a]), np.array([[0]]), [np.zeros(0, np.int64)]), stats, [],
                                    recency=True)
    assert np.isnan(untimed[0, -1])


def test_stats_saved_before_user_times_load_without_them(data: Dataset, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    ItemStats.from_dataset(data).save(tmp_path / "stats.safetensors")
    tensors = load_file(str(tmp_path / "stats.safetensors"))
    del tensors["user_last"]
    save_file(tensors, str(tmp_path / "old.safetensors"))
    old = ItemStats.load(tmp_path / "old.safetensors")
    assert old.user_last is None and np.isnan(old.last_times(np.array([0, 1]))).all()


def test_transitions_follow_time_order_within_the_gap(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data, transition_gap=3)
    x, y, z, w = ids(data, "x", "y", "z", "w")
    assert stats.trans[x, y] == 2 and stats.trans[x, z] == 1 and stats.trans[x, w] == 1 and stats.trans[y, w] == 1
    assert stats.trans[y, x] == 0  # order matters: y never precedes x
    assert stats.trans_out[[x, y, z, w]].tolist() == [4, 1, 0, 0]
    assert ItemStats.from_dataset(data, transition_gap=1).trans[x, w] == 0  # w came two events after x


def test_recent_item_features(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data, recent_days=30)
    x, y, z, w = ids(data, "x", "y", "z", "w")
    batch = RankBatch(np.array([0]), np.array([[z, w, y]]), [np.array([y, x])])
    matrix, _ = candidate_features(batch, stats, [])
    col = dict(zip(feature_names([], False), matrix.T, strict=True))
    assert col["trans_last1"].tolist() == pytest.approx([1 / 4, 1 / 4, 2 / 4])  # P(· follows x), x is last
    assert col["trans_last5"].tolist() == pytest.approx([(0 + 1 / 4) / 2, (1 + 1 / 4) / 2, (0 + 2 / 4) / 2])
    assert col["cooc_cos_last1"].tolist() == pytest.approx([1 / np.sqrt(3), 1 / np.sqrt(3), 2 / np.sqrt(6)])


def test_embedding_features_are_cosines_with_the_history(data: Dataset) -> None:
    stats = ItemStats.from_dataset(data)
    vectors = unit_rows(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]))
    batch = RankBatch(np.array([0]), np.array([[2, 3, -1]]), [np.array([0, 1])])
    matrix, valid = candidate_features(batch, stats, [], item_vectors=vectors)
    names = feature_names([], False, embedding=True)
    assert matrix.shape == (2, len(names)) and valid.tolist() == [[True, True, False]]
    col = dict(zip(names, matrix.T, strict=True))
    assert col["emb_max"].tolist() == pytest.approx([np.sqrt(0.5), 0.0])  # a zero vector matches nothing
    assert col["emb_mean"].tolist() == pytest.approx([np.sqrt(0.5), 0.0])
