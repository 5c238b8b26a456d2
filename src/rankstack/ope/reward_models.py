"""Reward models q̂(x, a, l) for the model-based estimators (DM, DR, SNDR, Switch-DR, DRos), and cross-fitting.

A reward model is anything with ``fit(log) -> self`` and ``predict(log) -> [rounds, actions, slots]`` on a
:class:`~rankstack.ope.bandit_log.BanditLog`. Cross-fitting (Chernozhukov et al. 2018; Narita et al. 2021 for OPE)
predicts each fold's rounds with a model fitted on the other folds, so DR's correction term is not fitted to the
very rewards it corrects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rankstack.ope.bandit_log import BanditLog


@runtime_checkable
class RewardModel(Protocol):
    """Fits on logged rounds; predicts the expected reward of every (round, action, slot)."""

    def fit(self, log: BanditLog) -> RewardModel:
        """Fit on the logged rounds; returns self."""
        ...

    def predict(self, log: BanditLog) -> np.ndarray:
        """q̂(x_i, a, l) for every round i, action a and slot l: float [rounds, actions, slots]."""
        ...


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, overflow-safe."""
    return np.exp(-np.logaddexp(0.0, -z))


@dataclass
class LogisticRewardModel:
    """Logistic regression on [context, action features (or a one-hot action), one-hot slot] (scikit-learn, L2).

    The logit is additive, q̂(x, a, l) = σ(θ_x·x + θ_a·φ(a) + θ_l + b), so all [rounds, actions, slots] predictions
    come from three small products instead of a rounds × actions × slots design matrix.
    """

    c: float = 1.0
    max_iter: int = 1000
    coef_: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def _action_features(self, log: BanditLog) -> np.ndarray:
        """φ(a) for every action: the log's action features, or a one-hot of the action."""
        return log.action_features if log.action_features is not None else np.eye(log.n_actions)

    def fit(self, log: BanditLog) -> LogisticRewardModel:
        """Fit by L-BFGS; a log with one reward class gets the constant model at its mean (LR cannot fit it)."""
        from sklearn.linear_model import LogisticRegression

        phi = self._action_features(log)
        d_x, d_a = log.context.shape[1], phi.shape[1]
        slots = np.eye(log.n_slots)[log.position]
        design = np.hstack([log.context, phi[log.action], slots])
        labels = (log.reward > 0).astype(np.int64)
        if labels.min() == labels.max():
            mean = float(np.clip(labels.mean(), 1e-6, 1 - 1e-6))
            self.coef_ = {"x": np.zeros(d_x), "a": np.zeros(d_a), "l": np.zeros(log.n_slots),
                          "b": np.array(np.log(mean / (1 - mean)))}
            return self
        model = LogisticRegression(C=self.c, max_iter=self.max_iter).fit(design, labels)
        w = model.coef_[0]
        self.coef_ = {"x": w[:d_x], "a": w[d_x:d_x + d_a], "l": w[d_x + d_a:], "b": np.array(model.intercept_[0])}
        return self

    def predict(self, log: BanditLog) -> np.ndarray:
        """σ(θ_x·x_i + θ_a·φ(a) + θ_l + b) for every (i, a, l)."""
        if not self.coef_:
            raise RuntimeError("LogisticRewardModel.predict called before fit")
        coef = self.coef_
        if len(coef["l"]) != log.n_slots or len(coef["x"]) != log.context.shape[1]:
            raise ValueError(f"the log has {log.context.shape[1]} context features and {log.n_slots} slots; the "
                             f"model was fitted on {len(coef['x'])} and {len(coef['l'])}")
        z = (log.context @ coef["x"])[:, None, None] + (self._action_features(log) @ coef["a"])[None, :, None]
        return _sigmoid(z + coef["l"][None, None, :] + coef["b"])


def cross_fit(make_model: Callable[[], RewardModel], log: BanditLog, *, folds: int = 3, seed: int = 0) -> np.ndarray:
    """q̂ [rounds, actions, slots] where each fold's rounds come from a model fitted on the other folds
    (``folds=1``: one model fitted and predicted on every round)."""
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if folds == 1 or log.n_rounds < folds:
        return make_model().fit(log).predict(log)
    fold = np.random.default_rng(seed).permutation(log.n_rounds) % folds
    out = np.empty((log.n_rounds, log.n_actions, log.n_slots))
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        out[held] = make_model().fit(log.take(np.flatnonzero(fold != k))).predict(log.take(held))
    return out


C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def select_c(log: BanditLog, grid: tuple[float, ...] = C_GRID, *, folds: int = 3, seed: int = 0
             ) -> tuple[float, dict[float, float]]:
    """The L2 strength of :class:`LogisticRewardModel` with the least cross-validated log loss on the logged rounds
    (validation on the log itself, never on an evaluated policy's outcome), and every candidate's loss."""
    from sklearn.metrics import log_loss

    labels = (log.reward > 0).astype(np.int64)
    rows = np.arange(log.n_rounds)
    losses = {}
    for c in grid:
        q = cross_fit(lambda c=c: LogisticRewardModel(c=c), log, folds=folds, seed=seed)  # type: ignore[misc]
        losses[c] = float(log_loss(labels, np.clip(q[rows, log.action, log.position], 1e-12, 1 - 1e-12),
                                   labels=[0, 1]))
    return min(losses, key=lambda c: losses[c]), losses


REWARD_MODELS: dict[str, Callable[[], RewardModel]] = {"logistic": LogisticRewardModel}
