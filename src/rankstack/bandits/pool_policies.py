"""Learning policies over one request's pool with a shared model: every pool entry has its own feature vector φ,
so one model (θ̂, A⁻¹ of ``rankstack.bandits.pool_stats``) scores any item of any catalogue.

Each returns (pool positions of the slate [k'], per-slot propensities [k']) for one pool of ``P`` entries given
in preference order; ``prior`` [P] is a fixed offset per pool position (the upstream order, weighted), so an
untrained model keeps the ranker's order and learning moves items away from it.

- ``linucb``: top-k of φθ̂ + α√(φᵀA⁻¹φ) + prior; deterministic, propensity 1.
- ``lints``: top-k of φθ̃ + prior with θ̃ ~ N(θ̂, v²A⁻¹); propensity by Monte Carlo.
- ``squarecb``: stratified inverse-gap weighting over ŷ = φθ̂ + prior (``rankstack.bandits.squarecb``); exact.
- ``bernoulli_ts``: top-k of p̃ + prior with p̃ ~ Beta(α₀ + wins, β₀ + misses) per item; Monte Carlo.
- ``ridge_epsilon_greedy``: the top-k of φθ̂ + prior; with probability ε a uniformly random slate of the pool
  instead; exact: π(a, l) = (1 − ε)·1[a is the greedy slate's l-th item] + ε / P.

Monte-Carlo propensities: (hits + 1) / (samples + 1), where hits counts the ``samples`` further draws whose
slate puts the same item at the same slot; the +1 counts the draw that chose the slate, so the estimate is never
0 (a served propensity must be positive) and tends to the true per-slot probability as samples grow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rankstack.bandits.pool_stats import RidgeModel

Choice = tuple[np.ndarray, np.ndarray]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, best first; equal scores → the earlier position (the upstream order)."""
    return np.argsort(-scores, kind="stable")[: min(k, len(scores))]


def linucb(phi: np.ndarray, prior: np.ndarray, k: int, model: RidgeModel, alpha: float) -> Choice:
    """Upper-confidence slate: deterministic, propensity 1 per slot."""
    width = np.sqrt(np.maximum(np.einsum("pd,pd->p", phi @ model.a_inv, phi), 0.0))  # φᵀA⁻¹φ per row
    positions = top_k(phi @ model.theta + alpha * width + prior, k)
    return positions, np.ones(len(positions))


def ridge_epsilon_greedy(phi: np.ndarray, prior: np.ndarray, k: int, model: RidgeModel, epsilon: float,
                         rng: np.random.Generator) -> Choice:
    """ε-greedy over the ridge's predictions, exact per-slot propensities."""
    greedy = top_k(phi @ model.theta + prior, k)
    positions = rng.permutation(len(phi))[: len(greedy)] if rng.random() < epsilon else greedy
    props = np.where(positions == greedy, 1.0 - epsilon, 0.0) + epsilon / len(phi)
    return positions, props


def _monte_carlo(positions: np.ndarray, draw: Callable[[int], np.ndarray], k: int, samples: int) -> np.ndarray:
    """(hits + 1) / (samples + 1): how often ``samples`` further draws (``draw(n)`` → scores [n, P]) rank the same
    item at the same slot, counting the draw that chose ``positions``."""
    if samples <= 0:
        return np.ones(len(positions))
    scores = draw(samples)
    order = np.argsort(-scores, axis=1, kind="stable")[:, : len(positions)]
    return ((order == positions[None, :]).sum(axis=0) + 1.0) / (samples + 1.0)


def lints(phi: np.ndarray, prior: np.ndarray, k: int, model: RidgeModel, v: float, samples: int,
          rng: np.random.Generator) -> Choice:
    """Thompson slate from one draw of θ̃ ~ N(θ̂, v²A⁻¹)."""
    def draw(n: int) -> np.ndarray:
        theta = model.theta[None, :] + v * rng.standard_normal((n, len(model.theta))) @ model.a_inv_chol.T
        return theta @ phi.T + prior[None, :]

    positions = top_k(draw(1)[0], k)
    return positions, _monte_carlo(positions, draw, k, samples)


def bernoulli_ts(alpha: np.ndarray, beta: np.ndarray, prior: np.ndarray, k: int, samples: int,
                 rng: np.random.Generator) -> Choice:
    """Thompson slate from one Beta draw per pool item (``alpha``/``beta`` [P]: the pool items' posteriors)."""
    def draw(n: int) -> np.ndarray:
        return rng.beta(alpha[None, :], beta[None, :], size=(n, len(alpha))) + prior[None, :]

    positions = top_k(draw(1)[0], k)
    return positions, _monte_carlo(positions, draw, k, samples)


def squarecb(phi: np.ndarray, prior: np.ndarray, k: int, model: RidgeModel, gamma: float,
             rng: np.random.Generator) -> Choice:
    """Stratified IGW: slot l draws from the items ranked l, l+k, l+2k, … by ŷ with γ/(1+l); exact propensities.

    All slots at once: row l of the [slots, stratum size] block is slot l's stratum (column 0 its best item);
    p(a) = 1 / (K_l + γ_l(ŷ_best − ŷ_a)) off the best, the rest on the best (``rankstack.bandits.squarecb.igw``).
    """
    pred = phi @ model.theta + prior
    order = top_k(pred, len(pred))
    width = min(k, len(pred))
    ranks = np.arange(width)[:, None] + k * np.arange(-(-len(pred) // k))[None, :]
    ok = ranks < len(pred)
    cand = order[np.minimum(ranks, len(pred) - 1)]
    values = pred[cand]
    gamma_l = gamma / (1.0 + np.arange(width))[:, None]
    gap = np.where(ok, values[:, :1] - values, 0.0)
    p = np.where(ok, 1.0 / (ok.sum(axis=1, keepdims=True) + gamma_l * np.maximum(gap, 0.0)), 0.0)
    p[:, 0] = 0.0
    p[:, 0] = 1.0 - p.sum(axis=1)
    u = rng.random(width)[:, None] * p.sum(axis=1, keepdims=True)
    pick = np.minimum((np.cumsum(p, axis=1) <= u).sum(axis=1), ok.sum(axis=1) - 1)
    rows = np.arange(width)
    return cand[rows, pick], p[rows, pick]
