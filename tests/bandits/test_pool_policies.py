"""The pool policies' per-slot propensities: 1 for LinUCB, the exact stratified IGW for SquareCB, and Monte-Carlo
estimates close to the observed frequencies for the Thompson policies."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rankstack.bandits import pool_policies as pp
from rankstack.bandits.pool_stats import PoolStats, quantize, ridge_model

P, D, K = 8, 4, 3


def model_and_phi(seed: int = 0) -> tuple[pp.RidgeModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = quantize(rng.uniform(-1, 1, (200, D)))
    stats = PoolStats.empty(D, 1)
    stats.fold(q, np.zeros(200, np.int64), np.ones(200, np.int64), rng.integers(0, 2, 200))
    return ridge_model(stats, 1.0), rng.uniform(-1, 1, (P, D))


def test_linucb_is_deterministic_with_propensity_one() -> None:
    model, phi = model_and_phi()
    prior = np.zeros(P)
    a, pa = pp.linucb(phi, prior, K, model, alpha=0.3)
    b, _ = pp.linucb(phi, prior, K, model, alpha=0.3)
    width = np.sqrt(np.einsum("pd,de,pe->p", phi, model.a_inv, phi))
    assert a.tolist() == b.tolist() == np.argsort(-(phi @ model.theta + 0.3 * width))[:K].tolist()
    assert pa.tolist() == [1.0] * K


def test_squarecb_propensities_are_exact_frequencies() -> None:
    model, phi = model_and_phi(1)
    rng = np.random.default_rng(0)
    n = 6000
    seen: Counter[tuple[int, int]] = Counter()
    reported: dict[tuple[int, int], float] = {}
    for _ in range(n):
        positions, props = pp.squarecb(phi, np.zeros(P), K, model, gamma=20.0, rng=rng)
        assert len(set(positions.tolist())) == K
        for slot, (pos, p) in enumerate(zip(positions.tolist(), props.tolist(), strict=True)):
            seen[(slot, pos)] += 1
            reported[(slot, pos)] = p
    for key, count in seen.items():
        assert abs(count / n - reported[key]) < 0.025
    for slot in range(K):  # each slot's propensities over its stratum sum to 1
        assert abs(sum(p for (s, _), p in reported.items() if s == slot) - 1.0) < 1e-9


@pytest.mark.parametrize("policy", ["lints", "bernoulli_ts"])
def test_thompson_propensities_estimate_the_slot_frequencies(policy: str) -> None:
    model, phi = model_and_phi(2)
    rng = np.random.default_rng(3)
    alpha, beta = np.arange(1.0, P + 1), np.full(P, 3.0)
    n = 3000
    seen: Counter[int] = Counter()
    estimates: dict[int, list[float]] = {}
    for _ in range(n):
        if policy == "lints":
            positions, props = pp.lints(phi, np.zeros(P), K, model, 0.5, 200, rng)
        else:
            positions, props = pp.bernoulli_ts(alpha, beta, np.zeros(P), K, 200, rng)
        assert (props > 0).all() and (props <= 1).all()
        seen[int(positions[0])] += 1
        estimates.setdefault(int(positions[0]), []).append(float(props[0]))
    for pos, count in seen.items():
        if count > 100:
            assert abs(np.mean(estimates[pos]) - count / n) < 0.05


@pytest.mark.parametrize("pool_size", [5, 8, 13])
def test_squarecb_propensities_are_the_igw_of_each_stratum(pool_size: int) -> None:
    from rankstack.bandits.squarecb import igw

    model, _ = model_and_phi(4)
    phi = np.random.default_rng(pool_size).uniform(-1, 1, (pool_size, D))
    prior = 0.01 / np.log2(2 + np.arange(pool_size))
    positions, props = pp.squarecb(phi, prior, K, model, gamma=7.0, rng=np.random.default_rng(0))
    order = np.argsort(-(phi @ model.theta + prior), kind="stable")
    for slot, (pos, p) in enumerate(zip(positions.tolist(), props.tolist(), strict=True)):
        stratum = order[slot::K]
        expected = igw((phi[stratum] @ model.theta + prior[stratum])[None, :], np.ones((1, len(stratum)), bool),
                       7.0 / (1 + slot))[0]
        assert pos in stratum.tolist() and np.isclose(p, expected[stratum.tolist().index(pos)])


def test_ridge_epsilon_greedy_propensities_follow_the_formula() -> None:
    model, phi = model_and_phi(5)
    rng = np.random.default_rng(1)
    greedy = pp.top_k(phi @ model.theta, K)
    hits, n, eps = 0, 4000, 0.3
    for _ in range(n):
        positions, props = pp.ridge_epsilon_greedy(phi, np.zeros(P), K, model, eps, rng)
        assert len(set(positions.tolist())) == K
        on = positions == greedy
        assert np.allclose(props[on], 1 - eps + eps / P) and np.allclose(props[~on], eps / P)
        hits += int(positions[0] == greedy[0])
    assert abs(hits / n - (1 - eps + eps / P)) < 0.03
