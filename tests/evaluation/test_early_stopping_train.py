"""The training loops' shared early stopping: patience, the best epoch's snapshot, the budget, validation names."""

from __future__ import annotations

import itertools
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from rankstack.evaluation import early_stopping_train
from rankstack.evaluation.early_stopping_train import EarlyStopping, Validation


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
