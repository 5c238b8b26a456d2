"""Impression tables, the temporal split over requests, and the feature encoder."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError, DataValidationError
from rankstack.ranking.impression_features import FeatureConfig, FeatureEncoder, add_source_scores, add_user_embedding
from rankstack.ranking.impressions import ImpressionSplit, impression_table, temporal_impression_split
from rankstack.simulation import SimulationLog


def test_labels_and_exposures_match_the_simulation(sim_log: SimulationLog, sim_dataset: Dataset) -> None:
    table = impression_table(sim_dataset)
    assert table.height == len(sim_log)
    assert table.get_column("click").sum() == sim_log.click.sum()
    assert table.get_column("conversion").sum() == sim_log.conversion.sum()
    assert table.get_column("revenue").sum() == pytest.approx(sim_log.revenue.sum())
    assert table.get_column("exposures").sum() == sim_log.exposures.sum()
    assert {"payout", "category", "segment", "uf_0", "device", "hour"} <= set(table.columns)


def test_temporal_split_keeps_requests_whole_and_in_time_order(sim_split: ImpressionSplit) -> None:
    s = sim_split
    assert s.train.get_column("timestamp").max() < s.validation.get_column("timestamp").min()  # type: ignore[operator]
    assert s.validation.get_column("timestamp").max() < s.test.get_column("timestamp").min()  # type: ignore[operator]
    ids = [set(p.get_column("request_id").to_list()) for p in (s.train, s.validation, s.test)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    with pytest.raises(ValueError):
        temporal_impression_split(s.train, validation_start=0.9, test_start=0.5)


def test_impression_table_needs_impressions() -> None:
    clicks = Dataset.from_events(pl.DataFrame({"user_id": [1], "item_id": [2], "event": ["click"]}), name="x")
    with pytest.raises(DataValidationError, match="no impression"):
        impression_table(clicks)


def test_encoder_detects_columns_and_maps_unseen_values_to_zero(sim_split: ImpressionSplit) -> None:
    enc = FeatureEncoder().fit(sim_split.train)
    assert {"item_id", "category", "device", "hour", "segment"} <= set(enc.categorical_)
    assert "user_id" not in enc.categorical_ and "position" not in enc.categorical_
    assert {"exposures", "payout", "uf_0"} <= set(enc.numeric_)
    assert enc.log_["payout"] and not enc.log_["uf_0"]
    batch = enc.transform(sim_split.train)
    assert batch.num.abs().mean() < 2 and torch.all(batch.cat >= 1)
    assert abs(float(batch.num[:, enc.numeric_.index("uf_0")].mean())) < 1e-3
    odd = sim_split.test.head(3).with_columns(pl.lit("never-seen").alias("category"))
    assert torch.all(enc.transform(odd).cat[:, enc.categorical_.index("category")] == 0)
    moved = batch.at_position(0, enc.n_context)
    assert torch.all(moved.bias < enc.n_context) and torch.equal(moved.bias % enc.n_context, batch.bias % enc.n_context)


def test_encoder_honours_explicit_columns_and_rejects_unknown_ones(sim_split: ImpressionSplit) -> None:
    enc = FeatureEncoder(FeatureConfig(categorical=("category",), numeric=("payout",))).fit(sim_split.train)
    assert enc.categorical_ == ["category"] and enc.numeric_ == ["payout"]
    with pytest.raises(ConfigError, match="not in the impression table"):
        FeatureEncoder(FeatureConfig(numeric=("nope",))).fit(sim_split.train)


class _Fixed:
    """A scorer whose score of item i for user u is 1000·u + i."""

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(1000.0 * user_ids[:, None] + np.arange(40)[None, :])


def test_source_scores_and_user_embeddings_become_numeric_columns(sim_split: ImpressionSplit) -> None:
    table = sim_split.test.head(500)
    out = add_source_scores(table, {"fixed": _Fixed()}, batch_users=7)
    expected = 1000.0 * table.get_column("user_id").to_numpy() + table.get_column("item_id").to_numpy()
    np.testing.assert_allclose(out.get_column("score_fixed").to_numpy(), expected)
    emb = np.arange(2 * 400, dtype=np.float64).reshape(400, 2)
    out = add_user_embedding(out, emb)
    np.testing.assert_allclose(out.get_column("user_emb_1").to_numpy(), emb[table.get_column("user_id").to_numpy(), 1])
    enc = FeatureEncoder().fit(out)
    assert {"score_fixed", "user_emb_0", "user_emb_1"} <= set(enc.numeric_)
    with pytest.raises(ValueError, match="embeddings"):
        add_user_embedding(table, np.zeros((1, 2)))
