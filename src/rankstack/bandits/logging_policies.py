"""The marketplace simulator's logging policies: a bandit ``Policy`` over the eligible items, scored by a noisy
copy of the world's attraction model, behind the simulator's ``choose(requests, eligible, rng)`` hook.

Logged propensities follow :mod:`rankstack.bandits.policy`: per slot, π(item, slot | request).
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.draws import Draws
from rankstack.bandits.exploration import EpsilonGreedy, Softmax, Uniform
from rankstack.bandits.policy import Policy
from rankstack.simulation.log import SimulationLog
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.simulator_config import PolicyConfig, SimulatorConfig
from rankstack.simulation.world import Marketplace, Requests


class LoggingScores:
    """The logging model's view of the world: latent factors and item biases perturbed by ``score_noise``."""

    def __init__(self, world: Marketplace, config: PolicyConfig, rng: np.random.Generator) -> None:
        self.world = world
        self.config = config
        noise = config.score_noise
        self.user_latent_ = world.user_latent + noise * rng.standard_normal(world.user_latent.shape)
        self.item_latent_ = world.item_latent + noise * rng.standard_normal(world.item_latent.shape)
        self.item_bias_ = world.item_bias + noise * rng.standard_normal(world.n_items)

    def __call__(self, req: Requests) -> np.ndarray:
        """Logging scores [n, n_items]: item bias (popularity) or a noisy attraction logit (affinity)."""
        if self.config.score == "popularity":
            return np.broadcast_to(self.item_bias_, (len(req), self.world.n_items)).copy()
        scale = self.world.config.affinity_scale / np.sqrt(self.world.config.latent_dim)
        return scale * (self.user_latent_[req.users] @ self.item_latent_.T) + self.item_bias_


class LoggingPolicy:
    """A ``Policy`` over every item (ineligible ones as PAD), so that pool positions are item ids."""

    def __init__(self, policy: Policy, k: int, n_items: int, scores: LoggingScores | None = None) -> None:
        self.policy = policy
        self.k = k
        self.n_items = n_items
        self.scores = scores

    def _pool(self, req: Requests, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_eligible = int(eligible.sum())
        if n_eligible < self.k:
            raise ValueError(f"only {n_eligible} eligible items for slates of {self.k}")
        pool = np.broadcast_to(np.where(eligible, np.arange(self.n_items), -1), (len(req), self.n_items))
        scores = self.scores(req) if self.scores is not None else np.zeros(pool.shape)
        return pool, scores

    def choose(self, req: Requests, eligible: np.ndarray, rng: Draws) -> tuple[np.ndarray, np.ndarray]:
        """(items [n, k], per-slot propensities [n, k]); ``eligible`` is a bool mask [n_items]."""
        pool, scores = self._pool(req, eligible)
        slates = self.policy.choose(pool, scores, self.k, rng)
        return slates.items, slates.propensity

    def action_dist(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """π(item, slot | request): float [n, n_items, k]; each [r, :, l] sums to 1 over the eligible items."""
        pool, scores = self._pool(req, eligible)
        return self.policy.action_dist(pool, scores, self.k)


def build_policy(config: PolicyConfig, world: Marketplace, k: int, rng: np.random.Generator) -> LoggingPolicy:
    """The logging policy named by ``config.kind``; ``rng`` draws the logging model's errors."""
    if config.kind == "uniform":
        return LoggingPolicy(Uniform(), k, world.n_items)
    scores = LoggingScores(world, config, rng)
    if config.kind == "epsilon_greedy":
        return LoggingPolicy(EpsilonGreedy(config.epsilon), k, world.n_items, scores)
    return LoggingPolicy(Softmax(config.temperature, order="random"), k, world.n_items, scores)


def logging_policy(sim: MarketplaceSimulator) -> LoggingPolicy:
    """The logging policy of ``sim``'s config, its errors drawn from the simulator's policy seed."""
    return build_policy(sim.config.policy, sim.world, sim.config.slate_size, np.random.default_rng(sim.policy_seed))


def simulate(config: SimulatorConfig | None = None) -> SimulationLog:
    """A marketplace log under the config's own logging policy: the same config always gives the same log."""
    sim = MarketplaceSimulator(config)
    return sim.run(logging_policy(sim))
