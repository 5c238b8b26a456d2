"""The multi-task ranker: configs, heads (ESMM, position bias), calibration, baselines, errors, the fit's budget and
summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from pydantic import ValidationError

from rankstack.errors import ConfigError
from rankstack.evaluation.classification import roc_auc
from rankstack.ranking import networks_train
from rankstack.ranking.impression_features import EncodedBatch, FeatureEncoder
from rankstack.ranking.impressions import ImpressionSplit
from rankstack.ranking.layers import CrossNetwork, MMoE
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker
from rankstack.ranking.networks_train import bce_log_prob, log1mexp
from rankstack.testing.resume import check_resume
from slow_clock import SlowClock

FAST = {"epochs": 2, "batch_size": 1024, "mlp_dims": (32,), "expert_dims": (16,), "tower_dims": (8,), "device": "cpu"}


@pytest.fixture(scope="module")
def fitted(sim_split: ImpressionSplit) -> MultiTaskRanker:
    return MultiTaskRanker(MultiTaskConfig(**FAST)).fit(sim_split.train, sim_split.validation)


def test_heads_are_probabilities_and_esmm_multiplies(fitted: MultiTaskRanker, sim_split: ImpressionSplit) -> None:
    raw = fitted.predict(sim_split.test, calibrated=False)
    assert set(raw) == {"click", "conversion", "cvr", "revenue", "payout"}
    for head in ("click", "conversion", "cvr"):
        assert ((raw[head] > 0) & (raw[head] < 1)).all()
    np.testing.assert_allclose(raw["conversion"], raw["click"] * raw["cvr"], rtol=1e-5)
    np.testing.assert_allclose(raw["revenue"], raw["conversion"] * raw["payout"], rtol=1e-9)
    assert set(fitted.calibrators_) == {"click", "conversion", "cvr"}
    assert len(fitted.history_) >= 1 and "validation_loss" in fitted.history_[0]


def test_the_ranker_learns_something(fitted: MultiTaskRanker, sim_split: ImpressionSplit) -> None:
    pred = fitted.predict(sim_split.test)
    assert roc_auc(sim_split.test.get_column("click").to_numpy(), pred["click"]) > 0.6


def test_ranking_uses_the_first_slot(fitted: MultiTaskRanker, sim_split: ImpressionSplit) -> None:
    late = sim_split.test.filter(pl.col("position") == 4)
    logged = fitted.predict(late, calibrated=False)["click"]
    first = fitted.predict(late, position=0, calibrated=False)["click"]
    assert np.mean(first > logged) > 0.95  # the learned position bias lowers later slots
    np.testing.assert_allclose(fitted.score(late)["click"], fitted.predict(late, position=0)["click"])


@pytest.mark.parametrize(
    "extra",
    [
        {"architecture": "linear", "objectives": ("click", "conversion")},
        {"objectives": ("click",)},
        {"objectives": ("conversion",)},
        {"objectives": ("click", "conversion", "revenue"), "revenue_mode": "regression", "cvr_aux_weight": 0.5,
         "calibration": "platt", "cross_rank": None, "dropout": 0.1},
    ],
)
def test_variants_train_and_predict(extra: dict[str, object], sim_split: ImpressionSplit) -> None:
    cfg = MultiTaskConfig(**{**FAST, "epochs": 1, **extra})  # type: ignore[arg-type]
    pred = MultiTaskRanker(cfg).fit(sim_split.train, sim_split.validation).predict(sim_split.test.head(200))
    for objective in cfg.objectives:
        key = "click" if objective == "click" else "conversion" if objective == "conversion" else "revenue"
        assert np.isfinite(pred[key]).all() and (pred[key] >= 0).all()


def test_config_errors_are_clear(sim_split: ImpressionSplit) -> None:
    with pytest.raises(ValidationError, match="needs the conversion"):
        MultiTaskConfig(objectives=("click", "revenue"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        MultiTaskConfig(unknown=1)  # type: ignore[call-arg]
    no_conv = sim_split.train.with_columns(pl.lit(0).alias("conversion"))
    with pytest.raises(ConfigError, match="no positive labels"):
        MultiTaskRanker(MultiTaskConfig(**FAST)).fit(no_conv, sim_split.validation)
    with pytest.raises(ConfigError, match="expected_payout"):
        MultiTaskRanker(MultiTaskConfig(**FAST)).fit(sim_split.train.drop("payout"), sim_split.validation)
    with pytest.raises(RuntimeError, match="not fitted"):
        MultiTaskRanker().predict(sim_split.test)


def test_stable_log_losses() -> None:
    x = torch.tensor([-1e-9, -0.1, -0.7, -5.0, -50.0])
    reference = np.log1p(-np.exp(np.minimum(x.numpy().astype(np.float64), -1e-7)))
    np.testing.assert_allclose(log1mexp(x).numpy(), reference, rtol=1e-4)
    logp = torch.log(torch.tensor([0.2, 0.9]))
    expected = -(np.log(0.2) + np.log(0.1)) / 2
    assert float(bce_log_prob(logp, torch.tensor([1.0, 0.0]))) == pytest.approx(expected, rel=1e-5)


def test_cross_layer_and_gates_follow_their_formulas() -> None:
    torch.manual_seed(0)
    cross = CrossNetwork(4, 1)
    x0 = torch.randn(3, 4)
    layer = cross.layers[0]
    assert isinstance(layer, torch.nn.Linear)
    torch.testing.assert_close(cross(x0), x0 * layer(x0) + x0)
    mmoe = MMoE(4, n_experts=3, expert_dims=(5,), n_tasks=2)
    outs = mmoe(x0)
    assert len(outs) == 2 and outs[0].shape == (3, 5)
    gate = torch.softmax(mmoe.gates[1](x0), dim=1)
    experts = torch.stack([e(x0) for e in mmoe.experts], dim=1)
    torch.testing.assert_close(outs[1], (gate[:, :, None] * experts).sum(1))


def test_encoded_batches_slice_consistently(sim_split: ImpressionSplit) -> None:
    batch = FeatureEncoder().fit(sim_split.train).transform(sim_split.validation)
    part = batch.take(torch.tensor([0, 2]))
    assert isinstance(part, EncodedBatch) and len(part) == 2
    torch.testing.assert_close(part.cat[1], batch.cat[2])
    torch.testing.assert_close(part.labels["click"][1], batch.labels["click"][2])


def test_save_and_load_give_the_same_predictions(fitted: MultiTaskRanker, sim_split: ImpressionSplit,
                                                 tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rankstack.ranking.ranker_files import load_ranker, save_ranker

    save_ranker(fitted, tmp_path / "ranker")
    again = load_ranker(tmp_path / "ranker", device="cpu")
    table = sim_split.test.head(300)
    before, after = fitted.predict(table), again.predict(table)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6)
    with pytest.raises(RuntimeError, match="not fitted"):
        save_ranker(MultiTaskRanker(), tmp_path / "empty")


def test_the_fit_reports_its_epochs_and_stops_at_its_budget(sim_split: ImpressionSplit, slow_clock: SlowClock,
                                                            one_torch_thread: None) -> None:
    slow_clock.charge(networks_train, "_loss", 1.0)  # every batch (and validation chunk) costs 1 s of the fake clock
    settings = {**FAST, "epochs": 20, "batch_size": 2048, "patience": 50}
    stopped = MultiTaskRanker(MultiTaskConfig(**settings, time_budget_s=12.0)).fit(sim_split.train,
                                                                                 sim_split.validation)
    summary = stopped.fit_summary_
    assert summary is not None and summary.stopped_by == "budget" and slow_clock.now <= 12.0 + 1.0
    assert summary.metric == "validation_loss" and not summary.higher_is_better
    assert summary.epochs_run == len(stopped.history_) == len(summary.curve) >= 1
    ran_out = MultiTaskRanker(MultiTaskConfig(**{**settings, "epochs": 2})).fit(sim_split.train,
                                                                               sim_split.validation).fit_summary_
    assert ran_out is not None and (ran_out.epochs_run, ran_out.stopped_by) == (2, "epochs")
    assert ran_out.best_epoch in (1, 2)


def test_the_fit_summary_is_saved_with_the_ranker(fitted: MultiTaskRanker, tmp_path: Path) -> None:
    from rankstack.ranking.ranker_files import load_ranker, save_ranker

    assert fitted.fit_summary_ is not None and fitted.fit_summary_.epochs_run == len(fitted.history_)
    assert load_ranker(save_ranker(fitted, tmp_path / "ranker"), device="cpu").fit_summary_ == fitted.fit_summary_


def test_a_run_resumed_from_a_checkpoint_ends_as_the_uninterrupted_one(sim_split: ImpressionSplit) -> None:
    config = MultiTaskConfig(**{**FAST, "epochs": 4, "lr_decay": 0.5, "patience": 3})  # type: ignore[arg-type]
    check_resume(lambda: MultiTaskRanker(config).fit(sim_split.train, sim_split.validation),
                 lambda m: m.net_.state_dict(), epoch=2)
