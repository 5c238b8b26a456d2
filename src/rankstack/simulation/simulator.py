"""Run the marketplace: draw requests, let a logging policy choose slates, sample clicks and conversions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rankstack.simulation.log import SimulationLog
from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS, SimulatorConfig
from rankstack.simulation.world import Marketplace, Requests

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class SlateValue:
    """True expected outcomes of slates, per slot [n, k]: clicks, conversions and revenue."""

    clicks: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray

    def per_request(self) -> dict[str, np.ndarray]:
        """Expected clicks, conversions and revenue summed over each slate's slots: arrays [n]."""
        return {"clicks": self.clicks.sum(1), "conversions": self.conversions.sum(1), "revenue": self.revenue.sum(1)}


class SlatePolicy(Protocol):
    """What a run needs of a logging policy (``rankstack.bandits.logging_policies`` provides them)."""

    def choose(self, req: Requests, eligible: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(items [n, k], per-slot propensities [n, k]) for each request; ``eligible`` is a bool mask [n_items]."""
        ...


class _ExposureCounter:
    """Running count of earlier impressions per (user, item) pair, updated chunk by chunk.

    A dense int32 table when users × items ≤ 2^25 (128 MiB at most), else sorted unique keys with counts.
    """

    DENSE_LIMIT = 2**25

    def __init__(self, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.dense = np.zeros(n_users * n_items, dtype=np.int32) if n_users * n_items <= self.DENSE_LIMIT else None
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)

    def observe(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Earlier impressions of each (user, item) in row-major order; then record them."""
        keys = (users[:, None] * self.n_items + items).ravel()
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        group_start = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
        within = np.empty(len(keys), dtype=np.int64)
        within[order] = np.arange(len(keys)) - group_start
        if self.dense is not None:
            earlier = self.dense[keys].astype(np.int64)
            uniq, counts = np.unique(sorted_keys, return_counts=True)
            self.dense[uniq] += counts.astype(np.int32)
            return (earlier + within).reshape(items.shape)
        earlier = np.zeros(len(keys), dtype=np.int64)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            earlier = np.where(self.keys[pos] == keys, self.counts[pos], 0)
        uniq, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        weights = np.concatenate([self.counts, np.ones(len(keys), dtype=np.int64)])
        self.keys, self.counts = uniq, np.bincount(inverse, weights=weights).astype(np.int64)
        return (earlier + within).reshape(items.shape)


class MarketplaceSimulator:
    """A seeded marketplace: the same config (seed included) always gives the same world and the same log.

    >>> from rankstack.bandits.logging_policies import logging_policy
    >>> sim = MarketplaceSimulator(SimulatorConfig(n_users=50, n_items=20, n_impressions=1_000))
    >>> log = sim.run(logging_policy(sim))
    >>> log.events().height >= 1_000
    True
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        world_seed, self.policy_seed, self._log_seed = np.random.SeedSequence(self.config.seed).spawn(3)
        self.world = Marketplace.generate(self.config, np.random.default_rng(world_seed))

    def draw_requests(self, n: int, rng: np.random.Generator) -> Requests:
        """``n`` requests in time order: users ∝ activity, times uniform over the run, device and placement."""
        c, w = self.config, self.world
        users = rng.choice(w.n_users, size=n, p=w.user_activity / w.user_activity.sum())
        t_frac = np.sort(rng.random(n))
        seconds = t_frac * c.days * SECONDS_PER_DAY + c.start.hour * 3600 + c.start.minute * 60
        hour = ((seconds // 3600) % 24).astype(np.int64)
        other = rng.choice(len(DEVICES), size=n, p=c.device_probs)
        device = np.where(rng.random(n) < c.main_device_share, w.user_main_device[users], other)
        placement = rng.choice(len(PLACEMENTS), size=n, p=c.placement_probs)
        return Requests(users.astype(np.int64), t_frac, hour, device.astype(np.int64), placement.astype(np.int64))

    def run(self, policy: SlatePolicy, *, traffic_seed: int | None = None,
            n_impressions: int | None = None) -> SimulationLog:
        """Simulate ``n_impressions`` impressions (default: the config's) under ``policy`` (the configured one:
        ``rankstack.bandits.logging_policies.logging_policy(sim)``).

        ``traffic_seed`` draws fresh requests and outcomes in the same world (default: the config's log seed), so
        that one world can be served by several policies on independent traffic (the closed loop)."""
        c, w = self.config, self.world
        if n_impressions is not None:
            if n_impressions < 1:
                raise ValueError(f"n_impressions must be at least 1, got {n_impressions}")
            c = c.model_copy(update={"n_impressions": n_impressions})
        if traffic_seed is not None and traffic_seed < 0:
            raise ValueError(f"traffic_seed must be >= 0, got {traffic_seed}")
        seed = self._log_seed if traffic_seed is None else np.random.SeedSequence([self.config.seed, 1, traffic_seed])
        rng = np.random.default_rng(seed)
        reqs = self.draw_requests(c.n_requests, rng)
        counter = _ExposureCounter(w.n_users, w.n_items)
        spend = np.zeros(c.n_advertisers)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in SimulationLog.ARRAYS}
        k = c.slate_size
        for start in range(0, len(reqs), c.chunk_requests):
            index = np.arange(start, min(start + c.chunk_requests, len(reqs)))
            req = reqs.take(index)
            eligible = np.ones(w.n_items, dtype=bool)
            if c.advertiser_budget is not None:
                eligible = spend[w.item_advertiser] < c.advertiser_budget
                if eligible.sum() < k:
                    raise ValueError(
                        f"advertiser budgets exhausted after {start:,} requests: fewer than {k} items left; "
                        "raise advertiser_budget"
                    )
            items, prop = policy.choose(req, eligible, rng)
            positions = np.broadcast_to(np.arange(k), items.shape)
            exposures = counter.observe(req.users, items)
            p_click = w.click_probability(req, items, positions, exposures)
            p_conv = w.conversion_probability(req, items)
            click = rng.random(items.shape) < p_click
            conversion = click & (rng.random(items.shape) < p_conv)
            revenue = np.where(conversion, w.item_payout[items], 0.0)
            spend += np.bincount(w.item_advertiser[items].ravel(), weights=revenue.ravel(), minlength=len(spend))
            click_delay = rng.uniform(1.0, 30.0, items.shape)
            conv_delay = rng.uniform(60.0, 3600.0, items.shape)
            columns = {
                "request": np.repeat(index, k), "user": np.repeat(req.users, k), "item": items,
                "position": positions, "propensity": prop, "t_frac": np.repeat(req.t_frac, k),
                "hour": np.repeat(req.hour, k), "device": np.repeat(req.device, k),
                "placement": np.repeat(req.placement, k), "exposures": exposures, "p_click": p_click,
                "p_conversion": p_conv, "click": click, "conversion": conversion, "revenue": revenue,
                "click_delay": click_delay, "conversion_delay": conv_delay,
            }
            for key, value in columns.items():
                parts[key].append(np.ascontiguousarray(value).ravel())
        arrays = {key: np.concatenate(chunks)[: c.n_impressions] for key, chunks in parts.items()}
        return SimulationLog(config=c, world=w, spend=spend, **arrays)

    def expected_value(
        self, req: Requests, slates: np.ndarray, exposures: np.ndarray | None = None
    ) -> SlateValue:
        """True expected clicks, conversions and revenue of ``slates`` [n, k] (slot 0 first) for ``req``."""
        slates = np.asarray(slates, dtype=np.int64)
        if slates.ndim != 2 or slates.shape[0] != len(req):
            raise ValueError(f"slates must be [{len(req)}, k], got {slates.shape}")
        positions = np.broadcast_to(np.arange(slates.shape[1]), slates.shape)
        p_click = self.world.click_probability(req, slates, positions, exposures)
        p_conv = p_click * self.world.conversion_probability(req, slates)
        return SlateValue(p_click, p_conv, p_conv * self.world.item_payout[slates])
