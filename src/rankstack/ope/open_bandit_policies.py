"""The Open Bandit Dataset's two logging policies as evaluation policies: uniform random and Bernoulli TS.

Bernoulli Thompson Sampling as ZOZOTOWN ran it ranks the items by one draw θ_a ~ Beta(α_a, β_a) each and shows
the top ``k``; its per-slot action distribution P(item a at slot l) has no closed form, so it is estimated by
Monte Carlo over ``n_sim`` draws (as obp's ``BernoulliTS.compute_batch_action_dist`` does). The Beta priors of the
``all`` campaign are the production priors published in obp (st-tech/zr-obp, ``obp/policy/conf/prior_bts.yaml``,
Apache-2.0), indexed by ``item_id``.
"""

from __future__ import annotations

import numpy as np

ALL_CAMPAIGN_ALPHA = np.array([
    47, 8, 62, 142, 3, 14, 7, 857, 12, 15, 6, 100, 48, 23, 71, 61, 13, 16, 518, 30, 7, 4, 23, 8, 10, 11, 11, 18, 121,
    11, 11, 10, 14, 9, 204, 58, 3, 19, 42, 1013, 2, 328, 15, 31, 14, 138, 45, 55, 23, 38, 10, 401, 52, 6, 3, 6, 5,
    32, 35, 133, 52, 820, 43, 195, 8, 42, 40, 4, 32, 30, 9, 22, 6, 23, 5, 54, 8, 22, 65, 246,
], dtype=np.float64)
ALL_CAMPAIGN_BETA = np.array([
    12198, 3566, 15993, 35522, 2367, 4609, 3171, 181745, 4372, 4951, 3100, 24665, 13210, 7061, 18061, 17449, 5644,
    6787, 111326, 8776, 3334, 2271, 7389, 2659, 3665, 4724, 3561, 5085, 27407, 4601, 4756, 4120, 4736, 3788, 45292,
    14719, 2189, 5589, 11995, 222255, 2308, 70034, 4801, 8274, 5421, 31912, 12213, 13576, 6230, 10382, 4141, 85731,
    12811, 2707, 2250, 2668, 2886, 9581, 9465, 28336, 12062, 162793, 12107, 41240, 3162, 11604, 10818, 2923, 8897,
    8654, 4000, 6580, 3174, 6766, 2602, 14506, 3968, 7523, 16532, 51964,
], dtype=np.float64)


def uniform_action_dist(n_actions: int, n_slots: int) -> np.ndarray:
    """The uniform-random slate policy: every item equally likely at every slot, [1, actions, slots] of 1/actions."""
    return np.full((1, n_actions, n_slots), 1.0 / n_actions)


def bernoulli_ts_action_dist(
    alpha: np.ndarray, beta: np.ndarray, n_slots: int, *, n_sim: int = 100_000, seed: int = 0, chunk: int = 10_000
) -> np.ndarray:
    """Monte-Carlo P(item a at slot l) for a policy that shows the top ``n_slots`` of θ_a ~ Beta(α_a, β_a):
    [1, actions, slots], each slot summing to 1 (standard error ≤ 0.5 / sqrt(n_sim) per entry)."""
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    if alpha.shape != beta.shape or alpha.ndim != 1:
        raise ValueError(f"alpha and beta must be 1-D of one length, got {alpha.shape} and {beta.shape}")
    if n_slots > len(alpha) or n_sim < 1:
        raise ValueError(f"need 1 <= n_slots <= {len(alpha)} items and n_sim >= 1, got {n_slots} and {n_sim}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), n_slots))
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        theta = rng.beta(alpha, beta, size=(m, len(alpha)))
        top = np.argsort(-theta, axis=1)[:, :n_slots]
        for slot in range(n_slots):
            counts[:, slot] += np.bincount(top[:, slot], minlength=len(alpha))
        done += m
    return (counts / n_sim)[None]


def open_bandit_bts_action_dist(n_slots: int = 3, *, n_sim: int = 100_000, seed: int = 0) -> np.ndarray:
    """The ZOZOTOWN Bernoulli TS policy of the ``all`` campaign: [1, 80, n_slots] (see the module docstring)."""
    return bernoulli_ts_action_dist(ALL_CAMPAIGN_ALPHA, ALL_CAMPAIGN_BETA, n_slots, n_sim=n_sim, seed=seed)
