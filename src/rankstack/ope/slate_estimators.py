"""Off-policy estimators of a slate policy's value: standard, independent and reward-interaction IPS, the
pseudo-inverse estimator and cascade doubly robust, each with a percentile-bootstrap interval.

Every estimator estimates V(π) = E_x E_{s∼π(·|x)} [Σ_k r_k(x, s)], the expected sum of the slot rewards of the
evaluated policy π's slate, from a log of slates drawn by μ (:class:`SlateLog`) and π's probabilities at the logged
choices (:class:`SlateTarget`). Each is the mean of one value per round (:func:`round_values`); they differ in what
they assume about how slot rewards depend on the slate, and each is unbiased under its assumption when μ covers π
(docs/ope_slates.md says which to trust when).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from rankstack.ope.slate_inputs import SlateLog, SlateTarget
from rankstack.ope.slate_pi import gamma_weights, is_uniform_log, product_weights, uniform_weights
from rankstack.ope.slate_result import SlateEstimate, summarize

Logging = Literal["uniform", "product"]
Values = tuple[np.ndarray, np.ndarray]


def _standard(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = target.need("cascade", "standard slate IPS")[:, -1] / log.cascade("standard slate IPS")[:, -1]
    return w * log.rewards.sum(axis=1), w


def _independent(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = target.need("pscore", "independent IPS") / log.pscore
    return (w * log.rewards).sum(axis=1), w.mean(axis=1)


def _independent_dr(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = target.need("pscore", "independent DR") / log.pscore
    residual = log.rewards - target.need("q_logged", "independent DR")
    return (target.need("q_marginal", "independent DR") + w * residual).sum(axis=1), w.mean(axis=1)


def _interaction(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = target.need("cascade", "reward-interaction IPS") / log.cascade("reward-interaction IPS")
    return (w * log.rewards).sum(axis=1), w.mean(axis=1)


def _pseudoinverse(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = uniform_weights(log, target) if logging == "uniform" else product_weights(log, target)
    return w * log.rewards.sum(axis=1), w


def _cascade_dr(log: SlateLog, target: SlateTarget, logging: Logging) -> Values:
    w = target.need("cascade", "cascade-DR") / log.cascade("cascade-DR")
    before = np.concatenate([np.ones((log.n_rounds, 1)), w[:, :-1]], axis=1)
    residual = log.rewards - target.need("q_logged", "cascade-DR")
    return (w * residual + before * target.need("q_baseline", "cascade-DR")).sum(axis=1), w.mean(axis=1)


_VALUES: dict[str, Callable[[SlateLog, SlateTarget, Logging], Values]] = {
    "standard IPS": _standard,
    "independent IPS": _independent,
    "independent DR": _independent_dr,
    "reward-interaction IPS": _interaction,
    "PI": _pseudoinverse,
    "cascade-DR": _cascade_dr,
}
NAMES = tuple(_VALUES)


def round_values(name: str, log: SlateLog, target: SlateTarget, *, logging: Logging = "uniform") -> Values:
    """(value [n], weight [n]) of estimator ``name`` per round: the estimate is the values' mean; the weight is the
    slate-level importance weight (the mean slot weight for the per-slot estimators), for diagnostics."""
    if name not in _VALUES:
        raise ValueError(f"unknown slate estimator {name!r}; choose from {', '.join(NAMES)}")
    target.check(log)
    return _VALUES[name](log, target, logging)


def _estimate(name: str, log: SlateLog, target: SlateTarget, logging: Logging, level: float, n_boot: int,
              seed: int) -> SlateEstimate:
    values, weights = round_values(name, log, target, logging=logging)
    return summarize(name, values, weights, support_deficit=target.deficit(), level=level, n_boot=n_boot, seed=seed)


def standard_ips(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0
                 ) -> SlateEstimate:
    """Standard slate IPS, any reward: V̂ = (1/n) Σ_i [π(s_i | x_i) / μ(s_i | x_i)] Σ_k r_ik, with the whole-slate
    probabilities (the last prefix probability)."""
    return _estimate("standard IPS", log, target, "uniform", level, n_boot, seed)


def independent_ips(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000,
                    seed: int = 0) -> SlateEstimate:
    """Independent IPS (Li et al., "Offline evaluation of ranking policies with click models", KDD 2018), when
    slot k's reward depends on the item at slot k only: V̂ = (1/n) Σ_i Σ_k [π(a_ik at k | x_i) / μ(a_ik at k | x_i)]
    r_ik."""
    return _estimate("independent IPS", log, target, "uniform", level, n_boot, seed)


def independent_dr(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000,
                   seed: int = 0) -> SlateEstimate:
    """Independent DR: independent IPS with a per-slot reward model Q̂_k(x, a) as control variate (the DR estimator
    of Dudík et al. 2011 applied slot by slot, under independent IPS's assumption that slot k's reward depends on
    the item at slot k only): V̂ = (1/n) Σ_i Σ_k [Σ_a π(a at k | x_i) Q̂_k(x_i, a) + w_ik (r_ik − Q̂_k(x_i, a_ik))],
    w_ik = π(a_ik at k | x_i) / μ(a_ik at k | x_i). Unbiased for any Q̂ when the per-slot propensities are right."""
    return _estimate("independent DR", log, target, "uniform", level, n_boot, seed)


def reward_interaction_ips(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000,
                           seed: int = 0) -> SlateEstimate:
    """Reward-interaction IPS (McInerney et al., "Counterfactual evaluation of slate recommendations with
    sequential reward interactions", KDD 2020), when slot k's reward depends on slots 1..k only (cascade):
    V̂ = (1/n) Σ_i Σ_k [π(a_i1..a_ik | x_i) / μ(a_i1..a_ik | x_i)] r_ik."""
    return _estimate("reward-interaction IPS", log, target, "uniform", level, n_boot, seed)


def cascade_dr(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0
               ) -> SlateEstimate:
    """Cascade doubly robust (Kiyohara et al., "Doubly robust off-policy evaluation for ranking policies under the
    cascade behavior model", WSDM 2022), under the cascade assumption, with a reward model Q̂_k(x, a_1..a_k) of
    the rewards of slots k..K:

    V̂ = (1/n) Σ_i Σ_k [ w_i,1:k (r_ik − Q̂_k(x_i, a_i,1:k))
                        + w_i,1:k−1 E_{a∼π(·|x_i, a_i,1:k−1)} Q̂_k(x_i, a_i,1:k−1, a) ],

    w_i,1:k = π(a_i1..a_ik | x_i) / μ(a_i1..a_ik | x_i), w_i,1:0 = 1. Unbiased for any Q̂ when the prefix
    probabilities are right; Q̂ = 0 gives reward-interaction IPS."""
    return _estimate("cascade-DR", log, target, "uniform", level, n_boot, seed)


def pseudoinverse(log: SlateLog, target: SlateTarget, *, logging: Logging = "uniform", level: float = 0.95,
                  n_boot: int = 1000, seed: int = 0) -> SlateEstimate:
    """The pseudo-inverse estimator (Swaminathan et al., "Off-policy evaluation for slate recommendation", NeurIPS
    2017) when the slate reward is additive over (slot, item) pairs: V̂ = (1/n) Σ_i w(s_i) Σ_k r_ik with
    w(s) = q_πᵀ Γ_μ† 1_s in the closed form of a uniform logger (``"uniform"``: K distinct of m items) or of one
    that fills slots independently (``"product"``); see :mod:`rankstack.ope.slate_pi`."""
    return _estimate("PI", log, target, logging, level, n_boot, seed)


def pseudoinverse_general(log: SlateLog, action_dist: np.ndarray, gamma: np.ndarray, *, level: float = 0.95,
                          n_boot: int = 1000, seed: int = 0) -> SlateEstimate:
    """The pseudo-inverse estimator for any logging policy, from its co-occurrence matrix Γ_μ [K·m, K·m] (or one
    per round) and π's ``action_dist`` [n, m, K]: V̂ = (1/n) Σ_i (q_πᵀ Γ_μ† 1_{s_i}) Σ_k r_ik."""
    w = gamma_weights(log, action_dist, gamma)
    return summarize("PI", w * log.rewards.sum(axis=1), w, level=level, n_boot=n_boot, seed=seed)


ESTIMATORS = {
    "standard IPS": standard_ips,
    "independent IPS": independent_ips,
    "independent DR": independent_dr,
    "reward-interaction IPS": reward_interaction_ips,
    "PI": pseudoinverse,
    "cascade-DR": cascade_dr,
}


def applicable(name: str, log: SlateLog, target: SlateTarget) -> bool:
    """Whether ``log`` and ``target`` hold what estimator ``name`` needs (PI: a uniform logger's propensities)."""
    cascades = log.pscore_cascade is not None and target.cascade is not None
    needs = {
        "standard IPS": cascades,
        "independent IPS": target.pscore is not None,
        "independent DR": target.pscore is not None and target.q_marginal is not None,
        "reward-interaction IPS": cascades,
        "PI": target.pscore is not None and target.inclusion is not None and is_uniform_log(log),
        "cascade-DR": cascades and target.q_logged is not None and target.q_baseline is not None,
    }
    return needs[name]


def evaluate_slates(log: SlateLog, target: SlateTarget, *, level: float = 0.95, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, SlateEstimate]:
    """Every estimator whose inputs ``log`` and ``target`` hold, by name (PI only for a uniform logger)."""
    return {name: estimator(log, target, level=level, n_boot=n_boot, seed=seed)
            for name, estimator in ESTIMATORS.items() if applicable(name, log, target)}
