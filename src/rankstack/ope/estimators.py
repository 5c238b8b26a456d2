"""Single-action off-policy estimators of a policy's value V(π_e) = E_x E_{a~π_e(·|x,l)}[r], per logged (item, slot).

Notation (see :mod:`rankstack.ope.feedback`): n logged rounds, the logged action a_i at slot l_i with reward r_i and
per-slot logging propensity p_i; w_i = π_e(a_i | x_i, l_i) / p_i; q̂_i(a) = q̂(x_i, a, l_i) a reward model;
q̂_i(π_e) = Σ_a π_e(a | x_i, l_i) q̂_i(a). Each estimator is a small frozen dataclass whose ``estimate`` returns one
number; ``rankstack.ope.bootstrap`` gives the interval of any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rankstack.ope.feedback import OffPolicyData


@runtime_checkable
class Estimator(Protocol):
    """An off-policy estimator: a lower-case ``name`` and ``estimate(data) -> float``."""

    @property
    def name(self) -> str:
        """The estimator's lower-case name (``dm``, ``ips``, ...)."""
        ...

    def estimate(self, data: OffPolicyData) -> float:
        """The estimated value of ``data.action_dist`` from the logged rounds."""
        ...


def _reward_model(data: OffPolicyData, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(q̂_i(π_e), q̂_i(a_i)) per round, or a ValueError when no reward-model estimates were given."""
    if data.estimated_rewards is None:
        raise ValueError(f"{name} needs estimated_rewards [rounds, actions, slots] from a reward model; got None")
    q = data.at_slot(data.estimated_rewards)
    on_policy = np.sum(data.at_slot(data.action_dist) * q, axis=1)
    return on_policy, q[np.arange(data.n_rounds), data.action]


@dataclass(frozen=True)
class DirectMethod:
    """DM (Beygelzimer & Langford 2009): V̂ = 1/n Σ_i q̂_i(π_e). Unbiased only when the reward model is."""

    name: str = field(default="dm", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i Σ_a π_e(a | x_i, l_i) q̂(x_i, a, l_i)."""
        return float(_reward_model(data, self.name)[0].mean())


@dataclass(frozen=True)
class IPS:
    """IPS (Horvitz & Thompson 1952; Precup et al. 2000): V̂ = 1/n Σ_i w_i r_i. Unbiased under full support."""

    name: str = field(default="ips", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i w_i r_i."""
        return float(np.mean(data.weights() * data.reward))


@dataclass(frozen=True)
class SNIPS:
    """Self-normalised IPS (Swaminathan & Joachims 2015): V̂ = Σ_i w_i r_i / Σ_i w_i (0 when every w_i is 0)."""

    name: str = field(default="snips", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """Σ_i w_i r_i / Σ_i w_i."""
        w = data.weights()
        total = w.sum()
        return float(np.sum(w * data.reward) / total) if total > 0 else 0.0


@dataclass(frozen=True)
class DR:
    """Doubly robust (Dudík et al. 2011): V̂ = 1/n Σ_i [q̂_i(π_e) + w_i (r_i − q̂_i(a_i))]."""

    name: str = field(default="dr", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i [q̂_i(π_e) + w_i (r_i − q̂_i(a_i))]."""
        dm, q_logged = _reward_model(data, self.name)
        return float(np.mean(dm + data.weights() * (data.reward - q_logged)))


@dataclass(frozen=True)
class SNDR:
    """Self-normalised DR (Kallus & Uehara 2019): V̂ = 1/n Σ_i q̂_i(π_e) + Σ_i w_i (r_i − q̂_i(a_i)) / Σ_i w_i."""

    name: str = field(default="sndr", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i q̂_i(π_e) + Σ_i w_i (r_i − q̂_i(a_i)) / Σ_i w_i."""
        dm, q_logged = _reward_model(data, self.name)
        w = data.weights()
        total = w.sum()
        correction = np.sum(w * (data.reward - q_logged)) / total if total > 0 else 0.0
        return float(dm.mean() + correction)


@dataclass(frozen=True)
class SwitchDR:
    """Switch-DR (Wang, Agarwal & Dudík 2017): V̂ = 1/n Σ_i [q̂_i(π_e) + w_i (r_i − q̂_i(a_i)) 1{w_i ≤ τ}].

    Rounds whose weight exceeds τ fall back to the reward model; τ = ∞ is DR, τ = 0 is DM.
    """

    tau: float = 10.0
    name: str = field(default="switch_dr", init=False)

    def __post_init__(self) -> None:
        if not self.tau >= 0:
            raise ValueError(f"switch_dr tau must be >= 0, got {self.tau}")

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i [q̂_i(π_e) + w_i (r_i − q̂_i(a_i)) 1{w_i ≤ τ}]."""
        dm, q_logged = _reward_model(data, self.name)
        w = data.weights()
        return float(np.mean(dm + np.where(w <= self.tau, w * (data.reward - q_logged), 0.0)))


@dataclass(frozen=True)
class DRos:
    """DR with optimistic shrinkage (Su et al. 2020): w̃_i = λ w_i / (w_i² + λ),
    V̂ = 1/n Σ_i [q̂_i(π_e) + w̃_i (r_i − q̂_i(a_i))]. λ → ∞ is DR, λ = 0 is DM."""

    lam: float = 1.0
    name: str = field(default="dros", init=False)

    def __post_init__(self) -> None:
        if not self.lam >= 0:
            raise ValueError(f"dros lam must be >= 0, got {self.lam}")

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i [q̂_i(π_e) + λ w_i / (w_i² + λ) (r_i − q̂_i(a_i))]."""
        dm, q_logged = _reward_model(data, self.name)
        w = data.weights()
        shrunk = np.divide(self.lam * w, w**2 + self.lam, out=np.zeros_like(w), where=(w**2 + self.lam) > 0)
        return float(np.mean(dm + shrunk * (data.reward - q_logged)))


def embedding_weights(data: OffPolicyData, name: str) -> np.ndarray:
    """Marginal weights w_i^e = P(e_i | x_i, π_e, l_i) / P(e_i | x_i, π_0, l_i), P(e|x, π, l) = Σ_{a: e(a)=e} π(a|x, l).

    Raises ValueError without ``behavior_dist`` or ``action_embedding``, or when the logger never shows the logged
    embedding (impossible in a consistent log).
    """
    if data.behavior_dist is None or data.action_embedding is None:
        raise ValueError(f"{name} needs behavior_dist [rounds, actions, slots] and action_embedding [actions]")
    same = data.action_embedding[None, :] == data.action_embedding[data.action][:, None]
    target = np.sum(data.at_slot(data.action_dist) * same, axis=1)
    logger = np.sum(data.at_slot(data.behavior_dist) * same, axis=1)
    if (logger <= 0).any():
        i = int(np.argmax(logger <= 0))
        raise ValueError(f"round {i}: behavior_dist gives the logged action's embedding probability 0")
    return target / logger


@dataclass(frozen=True)
class MIPS:
    """Marginalised IPS over action embeddings (Saito & Joachims 2022): V̂ = 1/n Σ_i w_i^e r_i.

    Unbiased when the reward depends on the action only through its embedding and every embedding the target
    shows the logger shows too; its variance grows with the number of embeddings, not of actions.
    """

    name: str = field(default="mips", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """1/n Σ_i w_i^e r_i (see :func:`embedding_weights`)."""
        return float(np.mean(embedding_weights(data, self.name) * data.reward))


@dataclass(frozen=True)
class SNMIPS:
    """Self-normalised MIPS: V̂ = Σ_i w_i^e r_i / Σ_i w_i^e (0 when every w_i^e is 0)."""

    name: str = field(default="snmips", init=False)

    def estimate(self, data: OffPolicyData) -> float:
        """Σ_i w_i^e r_i / Σ_i w_i^e."""
        w = embedding_weights(data, self.name)
        total = w.sum()
        return float(np.sum(w * data.reward) / total) if total > 0 else 0.0


MODEL_FREE = ("ips", "snips")
NEEDS_REWARD_MODEL = ("dm", "dr", "sndr", "switch_dr", "dros")
NEEDS_EMBEDDING = ("mips", "snmips")
ALL_ESTIMATORS = ("dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros", "mips", "snmips")


def make_estimator(name: str, *, tau: float = 10.0, lam: float = 1.0) -> Estimator:
    """The estimator called ``name`` (one of :data:`ALL_ESTIMATORS`) with its hyper-parameter."""
    made: dict[str, Estimator] = {
        "dm": DirectMethod(), "ips": IPS(), "snips": SNIPS(), "dr": DR(), "sndr": SNDR(),
        "switch_dr": SwitchDR(tau), "dros": DRos(lam), "mips": MIPS(), "snmips": SNMIPS(),
    }
    if name not in made:
        raise ValueError(f"unknown estimator {name!r}; expected one of {', '.join(ALL_ESTIMATORS)}")
    return made[name]
