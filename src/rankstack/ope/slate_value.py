"""Slate estimators on a logged bandit log: rounds grouped into slates by request, then every applicable estimator.

A request is a slate when its impressions fill slots 0..K−1 exactly once (K = the log's slot count); other requests are
left out and counted. The evaluated policy's per-slot distribution comes from its ``action_dist``; its prefix
probabilities are known when it is deterministic (a pipeline's greedy slates), the logger's when it is uniform over the
action axis (``--logger uniform``): standard and reward-interaction IPS need both, PI a uniform logger.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.slate_estimators import evaluate_slates
from rankstack.ope.slate_inputs import SlateLog, slate_target
from rankstack.ope.slate_policies import uniform_cascade


def slate_rounds(log: BanditLog) -> tuple[np.ndarray, int]:
    """Round indices [requests, K] of every complete request in slot order, and how many requests were incomplete."""
    if log.request_ids is None:
        raise ValueError("slate estimators need each logged impression's request_id")
    k = log.n_slots
    requests, inverse = np.unique(log.request_ids.astype(str), return_inverse=True)
    table = np.full((len(requests), k), -1, np.int64)
    counts = np.zeros((len(requests), k), np.int64)
    np.add.at(counts, (inverse, log.position), 1)
    table[inverse, log.position] = np.arange(log.n_rounds)
    complete = (counts == 1).all(axis=1) & (counts.sum(axis=1) == k)
    if not complete.any():
        raise ValueError(f"no logged request fills slots 0..{k - 1} exactly once: the log holds no complete slates "
                         "(each request of the Open Bandit logs shows one slot)")
    return table[complete], int((~complete).sum())


def estimate_slate_value(log: BanditLog, action_dist: np.ndarray, *, logger_uniform: bool, n_boot: int, seed: int,
                         level: float = 0.95) -> dict[str, Any]:
    """``{"requests", "incomplete_requests", "estimators": {name: {estimate, ci, std, ess, max_weight,
    support_deficit}}}``: the expected summed slate reward per request under ``action_dist``."""
    index, dropped = slate_rounds(log)
    n, k = index.shape
    first = index[:, 0]
    dist = action_dist[first] if len(action_dist) == log.n_rounds else np.broadcast_to(action_dist,
                                                                                      (n, *action_dist.shape[1:]))
    positions = log.action[index]
    cascade = uniform_cascade(log.n_actions, k, n) if logger_uniform else None
    slog = SlateLog(rewards=log.reward[index], positions=positions, pscore=log.pscore[index], pscore_cascade=cascade)
    at_logged = np.asarray(dist)[np.arange(n)[:, None], positions, np.arange(k)[None, :]]
    deterministic = bool(np.isin(np.asarray(dist), (0.0, 1.0)).all())
    target = slate_target(
        slog, action_dist=dist, cascade=np.cumprod(at_logged, axis=1) if deterministic else None,
        logging_dist=np.full(np.shape(dist), 1.0 / log.n_actions) if logger_uniform else None)
    found = evaluate_slates(slog, target, level=level, n_boot=n_boot, seed=seed)
    return {"requests": n, "incomplete_requests": dropped, "estimators": {
        name: {"estimate": e.value, "ci": [e.lower, e.upper], "std": e.std_error, "ess": e.ess,
               "max_weight": e.max_weight, "support_deficit": e.support_deficit} for name, e in found.items()}}
