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
        """Fit by L-BFGS on one BLAS thread (small problems: more threads only contend, 20× slower on a busy 2-core
        box); a log with one reward class gets the constant model at its mean (LR cannot fit it)."""
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

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
        with threadpool_limits(limits=1, user_api="blas"):
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




@dataclass
class MultitaskRewardModel:
    """The multi-task ranker (``rankstack.ranking.multitask``, its click head) as a reward model: fitted on the log's
    rounds (item id, slot, context features) with early stopping on a seeded ``validation`` share, predicted for every
    (round, action, slot) at that slot. Heavier than the logistic model: minutes, not seconds, on a 10k-round log."""

    settings: dict[str, object] = field(default_factory=dict)
    validation: float = 0.2
    seed: int = 0
    ranker_: object | None = field(default=None, init=False, repr=False)

    def _table(self, log: BanditLog, action: np.ndarray, position: np.ndarray, rows: np.ndarray) -> object:
        """The impression table the ranker reads: item id, slot, context columns ``ctx_j``, click label."""
        import polars as pl

        columns: dict[str, object] = {"item_id": action.astype(np.int64), "position": position.astype(np.int64),
                                      "click": (log.reward[rows] > 0).astype(np.float64)}
        for j in range(log.context.shape[1]):
            columns[f"ctx_{j}"] = log.context[rows, j].astype(np.float64)
        return pl.DataFrame(columns)

    def fit(self, log: BanditLog) -> MultitaskRewardModel:
        """Train the click head (objectives = click) on all but the validation share, early-stopped on it."""
        from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

        config = MultiTaskConfig.model_validate({"objectives": ["click"], "epochs": 5, "seed": self.seed,
                                                 **self.settings})
        order = np.random.default_rng(self.seed).permutation(log.n_rounds)
        cut = max(1, round(log.n_rounds * self.validation))
        valid, train = order[:cut], order[cut:]
        tables = [self._table(log, log.action[r], log.position[r], r) for r in (train, valid)]
        self.ranker_ = MultiTaskRanker(config).fit(tables[0], tables[1])  # type: ignore[arg-type]
        return self

    def predict(self, log: BanditLog) -> np.ndarray:
        """pCTR of every (round, action) at every slot: [rounds, actions, slots]."""
        if self.ranker_ is None:
            raise RuntimeError("MultitaskRewardModel.predict called before fit")
        rows = np.repeat(np.arange(log.n_rounds), log.n_actions)
        actions = np.tile(np.arange(log.n_actions), log.n_rounds)
        out = np.empty((log.n_rounds, log.n_actions, log.n_slots))
        for slot in range(log.n_slots):
            table = self._table(log, actions, np.full(len(rows), slot), rows)
            click = self.ranker_.predict(table, position=slot)["click"]  # type: ignore[attr-defined]
            out[:, :, slot] = np.asarray(click).reshape(log.n_rounds, log.n_actions)
        return out


REWARD_MODELS: dict[str, Callable[[], RewardModel]] = {
    "logistic": LogisticRewardModel,
    "multitask": MultitaskRewardModel,
}
