"""Exact slate probabilities the slate estimators need, for the policies of ``rankstack.bandits`` whose joint law is
simple: the uniform logger and ε-greedy (each over m actions, all valid).

A policy's ``action_dist`` gives per-slot marginals only; standard and reward-interaction IPS and cascade-DR also
need prefix probabilities P(a_1..a_k | x), and cascade-DR the conditional law of slot k given the logged prefix.
"""

from __future__ import annotations

import numpy as np


def uniform_cascade(n_actions: int | np.ndarray, slots: int, rounds: int | None = None) -> np.ndarray:
    """P(a_1..a_k) of ``bandits.Uniform`` (K distinct of m, random order): Π_{j<k} 1 / (m − j), [rounds, K]
    (``n_actions`` per round [rounds] or one m for ``rounds`` rounds)."""
    m = np.asarray(n_actions, dtype=np.float64).reshape(-1, 1)
    if rounds is not None:
        m = np.broadcast_to(m, (rounds, 1))
    if (m < slots).any():
        raise ValueError(f"a uniform slate of {slots} distinct items needs at least {slots} actions, got {m.min():g}")
    return np.cumprod(1.0 / (m - np.arange(slots)[None, :]), axis=1)


def _matches(positions: np.ndarray, greedy: np.ndarray) -> np.ndarray:
    """[n, K]: whether the logged prefix a_1..a_k equals the greedy prefix."""
    positions, greedy = np.asarray(positions), np.asarray(greedy)
    if positions.shape != greedy.shape:
        raise ValueError(f"greedy slates must have the logged slates' shape {positions.shape}, got {greedy.shape}")
    return np.cumprod(positions == greedy, axis=1).astype(bool)


def epsilon_greedy_cascade(positions: np.ndarray, greedy: np.ndarray, epsilon: float, n_actions: int) -> np.ndarray:
    """P(a_1..a_k) of ``bandits.EpsilonGreedy`` at the logged ``positions`` [n, K], given its ``greedy`` slates
    [n, K]: (1 − ε)·1[a_1..a_k = g_1..g_k] + ε Π_{j<k} 1 / (m − j)."""
    uniform = uniform_cascade(n_actions, positions.shape[1], len(positions))
    return (1.0 - epsilon) * _matches(positions, greedy) + epsilon * uniform


def epsilon_greedy_conditional(positions: np.ndarray, greedy: np.ndarray, epsilon: float, n_actions: int
                               ) -> np.ndarray:
    """P(a at slot k | x, logged a_1..a_{k−1}) of ``bandits.EpsilonGreedy``, [n, m, K]: with ρ_k the posterior
    chance that the slate is the greedy one given the prefix, ρ_k = (1 − ε)·1[prefix greedy] / P(prefix),
    it is ρ_k·1[a = g_k] + (1 − ρ_k)·1[a not in the prefix] / (m − k + 1)."""
    positions, greedy = np.asarray(positions), np.asarray(greedy)
    n, k = positions.shape
    m = int(n_actions)
    prior = np.concatenate([np.ones((n, 1)), epsilon_greedy_cascade(positions, greedy, epsilon, m)[:, :-1]], axis=1)
    match = np.concatenate([np.ones((n, 1), dtype=bool), _matches(positions, greedy)[:, :-1]], axis=1)
    # a prefix π never shows (ε = 0, off the greedy path): its weight is 0, any law will do; take the uniform one
    rho = np.where(prior > 0, (1.0 - epsilon) * match / np.where(prior > 0, prior, 1.0), 0.0)
    out = np.zeros((n, m, k))
    rows = np.arange(n)
    seen = np.zeros((n, m), dtype=bool)
    for slot in range(k):
        out[:, :, slot] = ((1.0 - rho[:, slot]) / (m - slot))[:, None] * ~seen
        out[rows, greedy[:, slot], slot] += rho[:, slot]
        seen[rows, positions[:, slot]] = True
    return out
