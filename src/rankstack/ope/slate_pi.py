"""Pseudo-inverse (PI) weights of Swaminathan et al., "Off-policy evaluation for slate recommendation", NeurIPS 2017.

Assumption: the slate reward is additive over (slot, item) pairs, r(x, s) = Σ_k φ_x(k, s_k) with φ unknown. With
1_s ∈ {0, 1}^{K·m} the indicator of the slate's (slot, item) pairs, Γ_μ = E_μ[1_s 1_sᵀ] (the logging policy's
co-occurrence matrix) and q_π = E_π[1_s] (the evaluated policy's marginals), the weight of a logged slate is

    w(s) = q_πᵀ Γ_μ† 1_s,        V̂_PI = (1/n) Σ_i w(s_i) · r_i,

unbiased whenever q_π lies in the range of Γ_μ (the evaluated policy's slot marginals are reachable from the
log). Any v with Γ_μ v = q_π gives the same w(s) = Σ_k v(k, s_k) on the slates μ can show, which yields the closed
forms below (derived here, checked against the pseudo-inverse in tests/ope/test_slate_pi.py).
Flattened (slot, item) index: k·m + a.
"""

from __future__ import annotations

import warnings

import numpy as np

from rankstack.ope.slate_inputs import SlateLog, SlateTarget, SupportWarning, check_considered, checked_distribution


def product_weights(log: SlateLog, target: SlateTarget) -> np.ndarray:
    """PI weights [n] when μ picks each slot independently (μ(s) = Π_k μ_k(s_k), repeats allowed):

    w(s) = Σ_k π(s_k at k | x) / μ(s_k at k | x) − (K − 1).
    """
    ratio = target.need("pscore", "PI (product logging)") / log.pscore
    return ratio.sum(axis=1) - (log.slots - 1)


def uniform_weights(log: SlateLog, target: SlateTarget) -> np.ndarray:
    """PI weights [n] when μ shows K distinct items of m, uniformly in random order (``bandits.Uniform``; m is read
    from the logged per-slot propensity 1/m). With q_k = π(s_k at k | x) and p_k = Σ_l π(s_k at l | x):

    w(s) = (m − 1) Σ_k q_k + [(m − 1) Σ_k p_k − m (K − 1)] / (m − K)      for m > K,
    w(s) = (m − 1) Σ_k q_k − (m − 2)                                      for m = K (every slate a permutation).
    """
    q = target.need("pscore", "PI (uniform logging)")
    p = target.need("inclusion", "PI (uniform logging)")
    m = _uniform_size(log)
    k = log.slots
    first = (m - 1) * q.sum(axis=1)
    wide = m > k
    rest = np.where(wide, ((m - 1) * p.sum(axis=1) - m * (k - 1)) / np.where(wide, m - k, 1), -(m - 2))
    return first + rest


def _not_uniform(log: SlateLog) -> tuple[np.ndarray, np.ndarray]:
    """(m per round, rounds [n] whose per-slot propensities are not one 1/m with m ≥ K)."""
    m = 1.0 / log.pscore
    size = np.rint(m[:, 0])
    return size, (np.abs(m - size[:, None]) > 1e-6 * size[:, None]).any(axis=1) | (size < log.slots)


def is_uniform_log(log: SlateLog) -> bool:
    """Whether every round's logged propensities are a uniform logger's 1/m (m ≥ K)."""
    return not _not_uniform(log)[1].any()


def _uniform_size(log: SlateLog) -> np.ndarray:
    """m per round from a uniform logger's propensities 1/m, or an error naming the first round that is not one."""
    size, bad = _not_uniform(log)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"slate log round {row}: pscore {log.pscore[row]} is not a uniform logger's 1/m with "
                         f"m ≥ K = {log.slots}; use logging='product' or pseudoinverse_general with Γ_μ")
    return size


def co_occurrence(slates: np.ndarray, probabilities: np.ndarray, n_actions: int) -> np.ndarray:
    """Γ_μ = Σ_s μ(s) 1_s 1_sᵀ [K·m, K·m] of an explicit distribution: ``slates`` [S, K] action indices with
    ``probabilities`` [S] (for small slate spaces: tests, or a logger that enumerates its slates)."""
    slates = np.asarray(slates, dtype=np.int64)
    k = slates.shape[1]
    flat = np.zeros((len(slates), k * n_actions))
    flat[np.arange(len(slates))[:, None], np.arange(k)[None, :] * n_actions + slates] = 1.0
    return (flat * np.asarray(probabilities, dtype=np.float64)[:, None]).T @ flat


def gamma_weights(log: SlateLog, action_dist: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """PI weights [n] from the pseudo-inverse itself: w(s_i) = q_πᵀ Γ_μ† 1_{s_i}, with ``action_dist`` [n, m, K]
    the evaluated policy's marginals and ``gamma`` [K·m, K·m] (one logging policy for every round) or
    [n, K·m, K·m]. Warns (:class:`SupportWarning`) when q_π is outside Γ_μ's range: the estimate is then biased."""
    dist = checked_distribution("action_dist", action_dist, log.n_rounds, log.slots)
    n, m, k = dist.shape
    check_considered(log, m, "action_dist")
    gam = np.asarray(gamma, dtype=np.float64)
    if gam.shape not in ((k * m, k * m), (n, k * m, k * m)):
        raise ValueError(f"gamma must be [{k * m}, {k * m}] or [{n}, {k * m}, {k * m}] (K·m = {k}·{m}), "
                         f"got {list(gam.shape)}")
    q = dist.transpose(0, 2, 1).reshape(n, k * m)  # index k·m + a
    if gam.ndim == 2:
        v = q @ np.linalg.pinv(gam, hermitian=True)
        reach = v @ gam
    else:
        pinv = np.linalg.pinv(gam, hermitian=True)
        v = np.einsum("nj,nji->ni", q, pinv)
        reach = np.einsum("nj,nji->ni", v, gam)
    gap = np.abs(reach - q).max(axis=1)
    if (gap > 1e-6).any():
        warnings.warn(f"the evaluated policy's slot marginals are outside the logging policy's reach in "
                      f"{int((gap > 1e-6).sum())} rounds (largest gap {gap.max():.3g}): PI is biased there",
                      SupportWarning, stacklevel=2)
    return v[np.arange(n)[:, None], np.arange(k)[None, :] * m + log.positions].sum(axis=1)
