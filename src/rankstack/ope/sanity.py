"""Logging-policy sanity: IPS of the logging policy's own value from its own log must match its on-policy mean.

With weights w_i = π_0(a_i | x_i, l_i) / p_i, where π_0 is recomputed from the policy's definition and p_i is the
propensity the log recorded, E[w r] = E[r] holds exactly when the recorded propensities are right; a wrong
convention (inclusion instead of per-slot, a stale ε, a propensity of the pre-rule slate) moves the IPS estimate
away from the plain mean of the logged rewards. The check passes when |IPS − mean| ≤ z · SE, SE the standard error
of the IPS estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SelfCheck:
    """The IPS self-estimate, the on-policy mean, the IPS standard error and whether they agree within z SE."""

    ips: float
    on_policy_mean: float
    standard_error: float
    z: float
    passed: bool


def logging_policy_check(
    reward: np.ndarray, recomputed: np.ndarray, pscore: np.ndarray, *, z: float = 2.0
) -> SelfCheck:
    """IPS = 1/n Σ_i (π_0(a_i | x_i, l_i) / p_i) r_i against 1/n Σ_i r_i; SE = sd(w r) / sqrt(n)."""
    reward, recomputed, pscore = (np.asarray(a, dtype=np.float64) for a in (reward, recomputed, pscore))
    if not reward.shape == recomputed.shape == pscore.shape or reward.ndim != 1 or len(reward) < 2:
        raise ValueError(f"reward, recomputed and pscore must be 1-D of one length >= 2, got {reward.shape}, "
                         f"{recomputed.shape}, {pscore.shape}")
    if not ((pscore > 0) & (pscore <= 1)).all():
        raise ValueError(f"pscore[{int(np.argmax(~((pscore > 0) & (pscore <= 1))))}] is not in (0, 1]")
    weighted = recomputed / pscore * reward
    ips, mean = float(weighted.mean()), float(reward.mean())
    se = float(weighted.std(ddof=1) / np.sqrt(len(reward)))
    return SelfCheck(ips, mean, se, z, abs(ips - mean) <= z * se + 1e-12)
