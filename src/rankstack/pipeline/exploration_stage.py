"""Exploration over a re-ranked pool: the configured bandit policy chooses each request's slate.

The pool comes in re-ranked order, which is the preference order: greedy and ε-greedy rank by pool position,
softmax samples by score and shows its sample in score order. Each request draws from its own stream
(``request_rng``), so a request gets the same slate alone or in any batch. The propensity served with each
item is the per-slot π(item, slot | request) of :mod:`rankstack.bandits.policy`; greedy serves None.
"""

from __future__ import annotations

import functools

import numpy as np

from rankstack.bandits.draws import RequestDraws
from rankstack.bandits.exploration import EpsilonGreedy
from rankstack.bandits.policy import Policy
from rankstack.pipeline import components
from rankstack.pipeline.config import ExplorationStage

# which of the exploration stage's settings each registered policy takes
POLICY_SETTINGS: dict[str, tuple[str, ...]] = {"greedy": (), "epsilon_greedy": ("epsilon",),
                                               "softmax": ("temperature",),
                                               # the learning policies read the stage's ``learning`` block
                                               "linucb": ("learning",), "lints": ("learning",),
                                               "squarecb": ("learning",), "bernoulli_ts": ("learning",),
                                               "ridge_epsilon_greedy": ("epsilon", "learning"),
                                               "neural_linear": ("learning",)}


def stage_policy(stage: ExplorationStage) -> Policy:
    """The bandit policy of a stateless exploration stage, from the component registry."""
    if stage.learns:
        raise ValueError(f"{stage.policy!r} learns online: the pipeline's OnlinePolicy chooses its slates")
    return _policy(stage.policy, tuple(getattr(stage, name) for name in POLICY_SETTINGS[stage.policy]))


@functools.lru_cache(maxsize=64)
def _policy(name: str, args: tuple[float, ...]) -> Policy:
    """One policy object per (name, settings): they hold no state between calls."""
    policy: Policy = components.resolve("policy", name)(*args)
    return policy


def explore(pool: np.ndarray, scores: np.ndarray, k: int, stage: ExplorationStage,
            rng: np.random.Generator | RequestDraws) -> tuple[np.ndarray, np.ndarray | None]:
    """(slate item ids, per-slot propensities or None) for one request; ``pool``/``scores`` in re-ranked order."""
    if len(pool) == 0 or stage.policy == "greedy":
        return pool[:k], None
    if stage.learns:
        raise ValueError(f"{stage.policy!r} learns online: the pipeline's OnlinePolicy chooses its slates")
    policy = stage_policy(stage)
    if isinstance(policy, EpsilonGreedy) and isinstance(rng, RequestDraws):
        return policy.choose_ordered(pool, k, rng)  # the pool is in preference order and holds no PAD
    ranked = scores if stage.policy == "softmax" else -np.arange(len(pool), dtype=np.float64)
    slates = policy.choose(pool[None, :], np.asarray(ranked, np.float64)[None, :], k,
                           rng if isinstance(rng, np.random.Generator) else [rng])
    return slates.items[0], slates.propensity[0]
