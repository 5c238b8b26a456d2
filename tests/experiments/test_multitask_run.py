"""The multitask experiment and simulator-judged slates."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.experiments.multitask_run import HEADLINE, run_multitask_experiment
from rankstack.ranking.impressions import impression_table
from rankstack.simulation import MarketplaceSimulator, SimulationLog, SimulatorConfig
from rankstack.simulation.slates import candidate_sets, slate_metrics, top_k

FAST = {"epochs": 1, "batch_size": 1024, "mlp_dims": [16], "expert_dims": [8], "tower_dims": [8], "device": "cpu",
        "slate_requests": 100, "n_candidates": 10}


def test_experiment_on_validation_reports_oracle_and_slates(
    sim_log: SimulationLog, sim_dataset: Dataset, tiny_config: SimulatorConfig
) -> None:
    record = run_multitask_experiment(sim_dataset, FAST, eval_on="validation", truth=sim_log.truth(),
                                      simulator=MarketplaceSimulator(tiny_config))
    sizes = record["dataset"]["split_sizes"]
    assert sizes["calibration"] > 0 and sizes["evaluation"] > 0
    assert all(isinstance(record[k], float) for k in HEADLINE)
    m = record["metrics"]
    assert m["oracle_log_loss_click"] < m["log_loss_click_raw"] + 0.05
    assert m["oracle_value_ranked_revenue_per_mille"] >= max(m["random_revenue_per_mille"],
                                                             m["click_ranked_revenue_per_mille"]) - 1e-9
    assert record["model"]["config"]["objectives"] == ["click", "conversion", "revenue"]


def test_candidates_count_earlier_exposures_and_oracle_ndcg_is_one(
    sim_dataset: Dataset, tiny_config: SimulatorConfig
) -> None:
    sim = MarketplaceSimulator(tiny_config)
    table = impression_table(sim_dataset)
    requests = table.group_by("request_id", maintain_order=True).first().tail(40)
    cands = candidate_sets(sim, sim_dataset, table, requests, n_candidates=8, seed=1)
    assert cands.items.shape == (40, 8) and cands.table.height == 320
    assert (np.sort(cands.items, 1)[:, 1:] != np.sort(cands.items, 1)[:, :-1]).all()
    for r in range(0, 40, 7):
        row = requests.row(r, named=True)
        for j in range(8):
            internal = int(sim_dataset.item_map.to_internal([int(cands.items[r, j])])[0])
            expected = table.filter((pl.col("user_id") == row["user_id"]) & (pl.col("item_id") == internal)
                                    & (pl.col("timestamp") < row["timestamp"])).height
            assert cands.exposures[r, j] == expected
    gains = sim.world.click_probability(cands.requests, cands.items, np.zeros_like(cands.items), cands.exposures)
    best = slate_metrics(sim, cands, gains, 3)
    assert best["ndcg"] == pytest.approx(1.0)
    worst = slate_metrics(sim, cands, -gains, 3)
    assert worst["clicks_per_mille"] < best["clicks_per_mille"]
    assert top_k(np.array([[0.1, 0.9, 0.5]]), 2).tolist() == [[1, 2]]
