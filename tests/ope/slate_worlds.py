"""Small slate spaces enumerated in full: a logging and an evaluated policy over every slate, expected slot rewards
of a chosen structure, and the exact expectation of any per-round estimator value under the logging policy."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rankstack.ope.slate_inputs import SlateLog, SlateTarget, slate_target


@dataclass(frozen=True)
class SlateWorld:
    """Every slate of ``m`` actions over K slots [S, K], μ and π over them [S], expected slot rewards [S, K]."""

    slates: np.ndarray
    mu: np.ndarray
    pi: np.ndarray
    rewards: np.ndarray
    m: int

    @property
    def slots(self) -> int:
        return self.slates.shape[1]

    def marginals(self, probs: np.ndarray) -> np.ndarray:
        """P(a at k) [m, K]."""
        out = np.zeros((self.m, self.slots))
        for s, p in zip(self.slates, probs, strict=True):
            out[s, np.arange(self.slots)] += p
        return out

    def prefix_probability(self, probs: np.ndarray, prefix: tuple[int, ...]) -> float:
        """P(the slate starts with ``prefix``)."""
        hit = (self.slates[:, : len(prefix)] == np.array(prefix, dtype=np.int64)).all(axis=1)
        return float(probs[hit].sum())

    def prefixes(self, probs: np.ndarray) -> np.ndarray:
        """P(s_1..s_k) for every slate and k [S, K]."""
        return np.array([[self.prefix_probability(probs, tuple(s[: k + 1])) for k in range(self.slots)]
                         for s in self.slates])

    def log(self) -> SlateLog:
        """One round per slate (the estimator's exact expectation weights the rounds by μ)."""
        return SlateLog(rewards=self.rewards, positions=self.slates,
                        pscore=self.marginals(self.mu)[self.slates, np.arange(self.slots)],
                        pscore_cascade=self.prefixes(self.mu))

    def conditional(self, prefix: tuple[int, ...]) -> np.ndarray:
        """π(a at slot len(prefix) | prefix) [m] (uniform when π never shows the prefix)."""
        base = self.prefix_probability(self.pi, prefix)
        if base == 0:
            return np.full(self.m, 1.0 / self.m)
        return np.array([self.prefix_probability(self.pi, (*prefix, a)) for a in range(self.m)]) / base

    def target(self, q_model: dict[tuple[int, ...], float] | None = None) -> SlateTarget:
        """π at every slate; with ``q_model`` (prefix → Q̂), cascade-DR's reward model too."""
        n, k = self.slates.shape
        dist = np.broadcast_to(self.marginals(self.pi), (n, self.m, k))
        if q_model is None:
            return slate_target(self.log(), action_dist=dist, cascade=self.prefixes(self.pi))
        model = np.zeros((n, self.m, k))
        cond = np.zeros((n, self.m, k))
        for i, s in enumerate(self.slates):
            for slot in range(k):
                prefix = tuple(int(a) for a in s[:slot])
                cond[i, :, slot] = self.conditional(prefix)
                model[i, :, slot] = [q_model.get((*prefix, a), 0.0) for a in range(self.m)]
        return slate_target(self.log(), action_dist=dist, cascade=self.prefixes(self.pi), reward_model=model,
                            conditional_dist=cond)

    def truth(self) -> float:
        """V(π) = Σ_s π(s) Σ_k r_k(s)."""
        return float(self.pi @ self.rewards.sum(axis=1))

    def expectation(self, values: np.ndarray) -> float:
        """E_μ of a per-round value computed on :meth:`log` (one round per slate)."""
        return float(self.mu @ values)

    def true_q(self) -> dict[tuple[int, ...], float]:
        """Q_k(a_1..a_k) = E_π[Σ_{l≥k} r_l | a_1..a_k] for every prefix π can reach."""
        out: dict[tuple[int, ...], float] = {}
        for slot in range(self.slots):
            for s, p, r in zip(self.slates, self.pi, self.rewards, strict=True):
                key = tuple(int(a) for a in s[: slot + 1])
                base = self.prefix_probability(self.pi, key)
                if base > 0:
                    out[key] = out.get(key, 0.0) + p / base * float(r[slot:].sum())
        return out


def make_world(m: int, k: int, reward: str, *, logging: str = "random", repeats: bool = False, seed: int = 0,
               sparse_pi: bool = True) -> SlateWorld:
    """Every ordered slate of k distinct (or, with ``repeats``, any) of m actions; μ ``"random"`` (full support, not
    a product), ``"uniform"`` or ``"product"``; rewards ``"additive"`` (slot, item), ``"cascade"`` (slots 1..k)
    or ``"general"`` (the whole slate)."""
    rng = np.random.default_rng(seed)
    pick = itertools.product(range(m), repeat=k) if repeats else itertools.permutations(range(m), k)
    slates = np.array(list(pick), dtype=np.int64)
    n = len(slates)
    if logging == "uniform":
        mu = np.full(n, 1.0 / n)
    elif logging == "product":
        per_slot = rng.dirichlet(np.ones(m), size=k)
        mu = np.prod(per_slot[np.arange(k)[None, :], slates], axis=1)
    else:
        mu = rng.dirichlet(np.ones(n))
    pi = rng.dirichlet(np.full(n, 0.5))
    if sparse_pi:
        drop = rng.random(n) < 0.3
        drop[int(np.argmax(pi))] = False  # π keeps at least one slate
        pi[drop] = 0.0
        pi /= pi.sum()
    if reward == "additive":
        phi = rng.random((k, m))
        rewards = phi[np.arange(k)[None, :], slates]
    elif reward == "cascade":
        table: dict[tuple[int, ...], float] = {}
        rewards = np.array([[table.setdefault(tuple(s[: j + 1]), rng.random()) for j in range(k)] for s in slates])
    else:
        rewards = rng.random((n, k))
    return SlateWorld(slates, mu, pi, rewards, m)
