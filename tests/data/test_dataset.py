"""Dataset: id mapping at the boundary, interaction matrices, sequences, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.data.schema import EventSchema
from rankstack.errors import DataValidationError


def _events() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ["bob", "amy", "amy", "amy", "bob", "amy"],
            "item_id": [30, 10, 20, 10, 10, 40],
            "timestamp": [5, 3, 1, 2, 4, 9],
            "event": ["click", "click", "purchase", "impression", "click", "click"],
        }
    )


def test_internal_ids_are_dense_and_map_back() -> None:
    ds = Dataset.from_events(_events(), name="toy")
    assert (ds.n_users, ds.n_items) == (2, 4)
    assert ds.user_map.to_external([0, 1]).to_list() == ["amy", "bob"]
    users = ds.user_map.to_external(ds.events.get_column("user_id").to_numpy()).to_list()
    assert users == _events().get_column("user_id").to_list()


def test_interaction_matrix_skips_zero_weight_events_and_can_weight() -> None:
    schema = EventSchema(event_weights={"impression": 0.0, "purchase": 5.0})
    ds = Dataset.from_events(_events(), name="toy", schema=schema)
    binary = ds.interaction_matrix().toarray()
    amy, item = 0, {10: 0, 20: 1, 30: 2, 40: 3}
    assert binary[amy].tolist() == [1, 1, 0, 1]
    weighted = ds.interaction_matrix(binary=False).toarray()
    assert weighted[amy, item[20]] == 5.0 and weighted[amy, item[10]] == 1.0  # impression adds nothing


def test_sequences_are_time_ordered_positive_events() -> None:
    ds = Dataset.from_events(_events(), name="toy")
    seqs = ds.sequences()
    to_ext = ds.item_map.to_external
    assert to_ext(seqs[0]).to_list() == [20, 10, 40]  # amy: t=1 purchase, t=3 click, t=9 click
    assert to_ext(seqs[1]).to_list() == [10, 30]


def test_save_load_round_trip(tmp_path: Path) -> None:
    feats = pl.DataFrame({"item_id": [10, 20, 30, 40, 99], "title": ["a", "b", "c", "d", "unused"]})
    ds = Dataset.from_events(_events(), name="toy", item_features=feats)
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    assert back.events.equals(ds.events)
    assert back.user_map == ds.user_map and back.item_map == ds.item_map
    assert back.item_features is not None and back.item_features.height == 4  # item 99 has no events
    assert back.checksum() == ds.checksum()
    assert not list((tmp_path / "ds").glob("*.tmp"))


def test_checksum_changes_with_the_data() -> None:
    a = Dataset.from_events(_events(), name="toy")
    b = Dataset.from_events(_events().with_columns(pl.col("timestamp") + 1), name="toy")
    assert a.checksum() != b.checksum()


def test_duplicate_feature_rows_are_rejected() -> None:
    feats = pl.DataFrame({"item_id": [10, 10], "title": ["a", "b"]})
    with pytest.raises(DataValidationError, match="row 2: duplicate id 10"):
        Dataset.from_events(_events(), name="toy", item_features=feats)


def test_interaction_matrix_shape_covers_the_whole_id_space() -> None:
    ds = Dataset.from_events(_events(), name="toy")
    part = ds.with_events(ds.events.filter(pl.col("user_id") == 0))
    mat = part.interaction_matrix()
    assert mat.shape == (2, 4) and mat[1].nnz == 0
    assert np.isclose(mat.sum(), 3)
