"""The training loops' shared early stopping: patience, the best epoch's snapshot, the budget, validation names; and
every trained source under one deadline (made slow on purpose with a fake clock: no timed assertions)."""

from __future__ import annotations

import itertools
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from rankstack.evaluation import early_stopping_train
from rankstack.evaluation.early_stopping_train import Deadline, EarlyStopping, Validation
from rankstack.pipeline.components import build_source
from rankstack.retrieval import lightgcn_train, two_tower_train
from rankstack.retrieval.source import CandidateSource
from rankstack.sequential import sasrec_train
from retrieval.planted import planted
from sequential.cycles import cycle_dataset
from slow_clock import SlowClock


def test_keeps_the_best_snapshot_and_counts_epochs_without_gain() -> None:
    stop: EarlyStopping[str] = EarlyStopping(epochs=10, patience=2, eval_every=1)
    for epoch, score in enumerate([0.1, 0.3, 0.3, 0.2], start=1):
        stop.record(epoch, score, partial(str, epoch))  # the snapshot: the epoch's number
    assert (stop.best, stop.best_epoch, stop.best_state, stop.stale) == (0.3, 2, "2", 2)
    assert stop.patience_spent
    stop.record(5, 0.4, partial(str, 5))
    assert (stop.best_epoch, stop.stale, stop.patience_spent) == (5, 0, False)


def test_validates_every_few_epochs_the_last_one_and_when_time_runs_out() -> None:
    stop: EarlyStopping[None] = EarlyStopping(epochs=7, patience=1, eval_every=3)
    assert [e for e in range(1, 8) if stop.due(e)] == [3, 6, 7]
    assert stop.due(1, out_of_time=True)


def test_the_budget_is_read_from_the_clock_only_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = itertools.count()
    monkeypatch.setattr(early_stopping_train, "time", SimpleNamespace(perf_counter=ticks.__next__))
    unlimited: EarlyStopping[None] = EarlyStopping(epochs=3, patience=1, eval_every=1)
    assert not unlimited.over_budget() and not unlimited.out_of_time(1e9)
    assert next(ticks) == 1  # construction read the clock once; over_budget did not
    limited: EarlyStopping[None] = EarlyStopping(epochs=3, patience=1, eval_every=1, budget_s=2.0)  # t0 = 2
    assert not limited.over_budget()  # 3 − 2 < 2
    assert limited.over_budget()  # 4 − 2 ≥ 2
    assert limited.out_of_time(2.0) and not limited.out_of_time(1.9)


def test_validation_names_its_metrics_and_scores_on_the_first() -> None:
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    held = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    ranked = Validation(seen, held, k=1, device=torch.device("cpu"), names=("ndcg", "hr"))
    # user 0 ranks its held item 1 first; user 1 ranks item 2 first, its held item 3 second
    scores = torch.tensor([[0.0, 3.0, 2.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
    assert ranked.key == "val_ndcg@1"
    assert ranked.of_scores(lambda users: scores[torch.as_tensor(users)]) == {"val_ndcg@1": 0.5, "val_hr@1": 0.5}
    by_default = Validation(seen, held, k=2, device=torch.device("cpu"))
    items = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [0.9, 0.9]])  # scores 0, 2, 1, 1.8 for either user
    metrics = by_default.of_embeddings(torch.ones(2, 2), items)  # top 2 but seen: {1, 3} and {3, 2}
    assert list(metrics) == ["val_recall@2", "val_ndcg@2"] and by_default.key == "val_recall@2"
    assert metrics["val_recall@2"] == 1.0


def test_a_deadline_keeps_back_reserved_time_and_never_expires_without_a_budget(slow_clock: SlowClock) -> None:
    deadline, unlimited = Deadline(10.0), Deadline(None)
    slow_clock.now = 6.0
    assert not deadline.expired() and deadline.expired(reserve_s=4.0) and not deadline.expired(3.9)
    assert deadline.expired(elapsed_s=10.0) and not unlimited.expired(reserve_s=1e9)


def test_time_to_stop_keeps_back_the_last_validation_pass(slow_clock: SlowClock) -> None:
    stop: EarlyStopping[None] = EarlyStopping(epochs=5, patience=2, eval_every=1, budget_s=10.0, metric="m")

    def validation() -> dict[str, float]:
        slow_clock.now += 3.0
        return {"m": 0.5}

    slow_clock.now = 6.5
    assert not stop.time_to_stop()  # nothing validated yet: nothing kept back
    stop.validate(validation)
    assert stop.validation_s == 3.0 and slow_clock.now == 9.5
    slow_clock.now = 7.5
    assert stop.time_to_stop()  # 7.5 + 3 ≥ 10: stop now so the last validation still fits
    stop.record(1, 0.5, lambda: None)
    stop.record(2, 0.4, lambda: None)
    summary = stop.summary(2, "budget", stop.best_epoch)
    assert summary.curve == ((1, 0.5), (2, 0.4)) and summary.best_epoch == 1 and summary.budget_s == 10.0
    assert summary.wall_s == 7.5 and summary.metric == "m"


# Each trained source made slow on purpose: every batch costs 1 s and every validation pass 3 s of the fake clock.
SLOW_FITS: dict[str, tuple[Any, str, str, dict[str, Any]]] = {
    "lightgcn": (lightgcn_train.LightGCNLoss, "bpr", "of_embeddings",
                 {"embedding_dim": 8, "batch_size": 8, "eval_every": 1, "patience": 50, "epochs": 50}),
    "two-tower": (two_tower_train, "batch_loss", "of_embeddings",
                  {"embedding_dim": 8, "hidden_dim": 8, "history_len": 4, "batch_size": 8, "epochs": 50,
                   "validation_ratio": 0.1, "patience": 50}),
    "sasrec": (sasrec_train, "_loss", "of_scores",
               {"max_len": 8, "hidden_dim": 8, "batch_size": 8, "epochs": 50, "patience": 50}),
}


def _slow_fit(name: str, clock: SlowClock, **settings: Any) -> CandidateSource:
    owner, batch_fn, validation_fn, base = SLOW_FITS[name]
    clock.charge(owner, batch_fn, 1.0)
    clock.charge(Validation, validation_fn, 3.0)
    data = cycle_dataset(n_users=40, n_items=12) if name == "sasrec" else planted(n_users=30, n_items=20)[0]
    return build_source(name, {**base, "device": "cpu", **settings}).fit(data)


@pytest.mark.parametrize("name", list(SLOW_FITS))
def test_a_budget_bounds_the_whole_fit_validation_included(name: str, slow_clock: SlowClock,
                                                           one_torch_thread: None) -> None:
    budget = 17.0
    model = _slow_fit(name, slow_clock, time_budget_s=budget)
    summary = model.fit_summary()
    assert summary is not None and summary.stopped_by == "budget"
    assert slow_clock.now <= budget + 1.0  # one batch of slack: the deadline is asked before each batch
    assert summary.epochs_run >= 1 and summary.best_epoch in [epoch for epoch, _ in summary.curve]
    assert len(summary.curve) == summary.epochs_run  # every completed epoch was validated, within the budget
    assert model.budget_stop_ is not None and model.budget_stop_.epochs_done == summary.epochs_run


@pytest.mark.parametrize("name", list(SLOW_FITS))
def test_a_budget_that_ends_inside_the_first_epoch_stops_it_there(name: str, slow_clock: SlowClock,
                                                                  one_torch_thread: None) -> None:
    model = _slow_fit(name, slow_clock, time_budget_s=2.5)
    summary = model.fit_summary()
    assert summary is not None and slow_clock.now <= 3.5  # not the whole first epoch (more than 4 batches)
    assert (summary.epochs_run, summary.best_epoch, summary.stopped_by, summary.curve) == (0, None, "budget", ())
    assert model.budget_stop_ is not None and model.budget_stop_.partial_epoch == "kept"
    assert "without a validation curve" in (summary.warning() or "")


@pytest.mark.parametrize("name", list(SLOW_FITS))
def test_stopped_by_says_converged_or_epochs(name: str, slow_clock: SlowClock, monkeypatch: pytest.MonkeyPatch,
                                             one_torch_thread: None) -> None:
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1])  # validation falls after the first epoch

    def falling(self: Validation, *args: Any) -> dict[str, float]:
        return {self.key: next(scores), "other": 0.0}

    monkeypatch.setattr(Validation, SLOW_FITS[name][2], falling)
    converged = _slow_fit(name, slow_clock, patience=2).fit_summary()
    assert converged is not None and converged.headline() == {"epochs_run": 3, "best_epoch": 1,
                                                               "stopped_by": "converged"}
    assert converged.warning() is None
    settings = {"validation": False} if name == "sasrec" else {"validation_ratio": 0.0}
    ran_out = _slow_fit(name, slow_clock, epochs=2, **settings).fit_summary()
    assert ran_out is not None and ran_out.headline() == {"epochs_run": 2, "best_epoch": 2, "stopped_by": "epochs"}
    assert ran_out.curve == () and ran_out.warning() is None


def test_a_budget_cut_validates_the_last_completed_epoch_that_eval_every_skipped(slow_clock: SlowClock,
                                                                                 one_torch_thread: None) -> None:
    budget = 30.0
    model = _slow_fit("lightgcn", slow_clock, time_budget_s=budget, eval_every=3)
    summary = model.fit_summary()
    assert summary is not None and summary.stopped_by == "budget" and slow_clock.now <= budget + 1.0
    assert summary.epochs_run % 3 != 0  # the budget ended between two scheduled validations ...
    assert summary.curve[-1][0] == summary.epochs_run  # ... and the last completed epoch was validated anyway
    assert [e for e, _ in summary.curve[:-1]] == list(range(3, summary.epochs_run, 3))
