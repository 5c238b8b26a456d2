"""Fitting ALS with the ``implicit`` library's CPU solver, one sweep at a time (progress, wall-clock budget,
optional training loss). :meth:`ALS.fit` calls :func:`train_als`; loading a fitted model never imports this."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from implicit.cpu import _als
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from rankstack.data.dataset import Dataset
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.progress import new_progress
from rankstack.retrieval.source import BudgetStop

if TYPE_CHECKING:  # the model imports this module inside fit(): no import back at run time
    from rankstack.retrieval.als import ALS, ALSConfig


def make_solver(cfg: ALSConfig) -> AlternatingLeastSquares:
    """implicit's CPU ALS for ``cfg``, set to run one sweep per ``fit`` call (factors persist between calls)."""
    solver = AlternatingLeastSquares(factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                                     dtype=np.float32, use_cg=cfg.solver == "cg", iterations=1,
                                     calculate_training_loss=False, num_threads=cfg.num_threads,
                                     random_state=cfg.seed)
    solver.cg_steps = cfg.cg_steps
    return solver


def training_loss(solver: AlternatingLeastSquares, x: sp.csr_matrix, cfg: ALSConfig) -> float:
    """implicit's weighted squared loss with L2 per observation (its ``calculate_loss``) on confidences α·x."""
    return float(_als.calculate_loss(sp.csr_matrix(cfg.alpha * x, dtype=np.float32), solver.user_factors,
                                     solver.item_factors, cfg.regularization, num_threads=cfg.num_threads))


def train_als(model: ALS, dataset: Dataset) -> None:
    """Fit ``model`` on the binary interactions of ``dataset``: ``iterations`` sweeps or until ``time_budget_s``.

    BLAS is held to one thread while implicit runs (its own threads do the work; nested BLAS threads only slow
    it, as implicit warns; implicit is imported above, so its BLAS is loaded before the limit is set). The seed
    fixes the initial factors, so a refit on the same data gives the same model.
    """
    cfg = model.config
    x = dataset.interaction_matrix(binary=True)
    if x.nnz == 0:
        raise ValueError(f"dataset {dataset.name!r} has no positive interactions to fit ALS on")
    model.train_ = x
    model.history_ = []
    model.budget_stop_ = None
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), new_progress() as progress:
        solver = make_solver(cfg)
        task = progress.add_task("ALS", total=cfg.iterations)
        for it in range(1, cfg.iterations + 1):
            solver.fit(x, show_progress=False)
            row: dict[str, float] = {"iteration": it, "wall_s": round(time.perf_counter() - start, 3)}
            if cfg.track_loss:
                row["loss"] = training_loss(solver, x, cfg)
                progress.update(task, description=f"ALS loss {row['loss']:.5f}")
            model.history_.append(row)
            progress.update(task, advance=1)
            if cfg.time_budget_s is not None and row["wall_s"] >= cfg.time_budget_s and it < cfg.iterations:
                model.budget_stop_ = BudgetStop(cfg.time_budget_s, it, cfg.iterations, row["wall_s"])
                break
    done = len(model.history_)
    model.fit_summary_ = FitSummary(  # no validation: the last sweep's factors are kept
        epochs_run=done, best_epoch=done, stopped_by="budget" if model.budget_stop_ is not None else "epochs",
        epochs=cfg.iterations, budget_s=cfg.time_budget_s, wall_s=round(time.perf_counter() - start, 3))
    model.set_factors(torch.from_numpy(np.ascontiguousarray(solver.user_factors)),
                      torch.from_numpy(np.ascontiguousarray(solver.item_factors)))
