"""The learning exploration stage: a shared contextual bandit over the re-ranked pool, updated online from the
service's feedback log.

Context (docs/bandits.md, "The online policy stage"): each (user, candidate) pair has the fixed-point features
φ = [1, y_item, x_user ⊙ y_item] where x and y are unit ``dim``-vectors fitted at train time — a truncated SVD of
the training interactions, or a vector source's (e.g. SASRec's) vectors projected to ``dim`` dimensions
(``learning.representation``) — (:class:`PolicyFeatures`, saved with the artifact; unknown users have x = 0).
One model is shared by every item, so its state is O(dim²) for any catalogue and what it learns on some items
carries to similar ones; ``bernoulli_ts`` (context-free) keeps two counters per item.

Learning: :meth:`OnlinePolicy.fold` adds the events of the log after its cursor to exact integer sums
(``rankstack.bandits.pool_stats``); a request reads the current :class:`PolicyState` (one reference, swapped
whole after each fold), so it never waits for an update.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from rankstack.bandits import pool_policies as pp
from rankstack.bandits.draws import RequestDraws
from rankstack.bandits.pool_stats import SCALE, PoolStats, RidgeModel, ridge_model
from rankstack.data.idmap import IdMap
from rankstack.io import atomic_write
from rankstack.pipeline.config import ExplorationStage, LearningSettings
from rankstack.state.feedback_log import LoggedEvent

FEATURES_FILE = "features.safetensors"
STATE_FILE = "state.safetensors"


@dataclass(frozen=True)
class PolicyFeatures:
    """Fixed-point (× ``SCALE``) unit vectors of every known user [n_users, dim] and item [n_items, dim], and the
    statistics learned at train time from the training log's impressions (``initial``; None: none)."""

    users: np.ndarray
    items: np.ndarray
    initial: PoolStats | None = None

    @property
    def dim(self) -> int:
        """Width of φ: 1 + 2·dim."""
        return 1 + 2 * self.items.shape[1]

    def phi(self, user: int, items: np.ndarray) -> np.ndarray:
        """Fixed-point φ of ``items`` [n] for internal ``user`` (-1: unknown) → int64 [n, 1 + 2·dim]."""
        y = self.items[items].astype(np.int64)
        x = self.users[user].astype(np.int64) if user >= 0 else np.zeros(y.shape[1], np.int64)
        return self._stack(x[None, :], y)

    def phi_rows(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Fixed-point φ of aligned (user, item) pairs [n] (users -1: unknown)."""
        y = self.items[items].astype(np.int64)
        x = np.where((users >= 0)[:, None], self.users[np.maximum(users, 0)].astype(np.int64), 0)
        return self._stack(x, y)

    @staticmethod
    def _stack(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        cross = np.rint(x * y / SCALE).astype(np.int64)
        return np.concatenate([np.full((len(y), 1), SCALE, np.int64), y, cross], axis=1)

    def digest(self) -> str:
        """SHA-256 of the vectors and the initial statistics (what the online statistics continue)."""
        h = hashlib.sha256()
        for part in (self.users, self.items):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part, np.int16).tobytes())
        if self.initial is not None:
            h.update(self.initial.to_bytes())
        return h.hexdigest()

    def save(self, folder: Path) -> None:
        """Write ``folder/features.safetensors`` (and ``state.safetensors``: the initial statistics)."""
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / FEATURES_FILE) as tmp:
            save_file({"users": np.ascontiguousarray(self.users, np.int16),
                       "items": np.ascontiguousarray(self.items, np.int16)}, str(tmp))
        if self.initial is not None:
            with atomic_write(folder / STATE_FILE) as tmp:
                tmp.write_bytes(self.initial.to_bytes())

    @classmethod
    def load(cls, folder: Path, n_users: int, n_items: int) -> PolicyFeatures:
        """Read what :meth:`save` wrote; a ``ValueError`` when the shapes do not fit the id maps."""
        arrays = load_file(str(folder / FEATURES_FILE))
        users, items = arrays["users"], arrays["items"]
        if users.shape[0] != n_users or items.shape[0] != n_items or users.shape[1] != items.shape[1]:
            raise ValueError(f"policy features are {users.shape} / {items.shape}, the id maps say "
                             f"{n_users} users / {n_items} items")
        initial = None
        if (folder / STATE_FILE).is_file():
            initial = PoolStats.from_bytes((folder / STATE_FILE).read_bytes(), 1 + 2 * items.shape[1], n_items)
        return cls(users, items, initial)


@dataclass(frozen=True)
class PolicyState:
    """What a request reads: the statistics and the model derived from them (never changed once published)."""

    stats: PoolStats
    model: RidgeModel
    beta_a: np.ndarray
    beta_b: np.ndarray


class OnlinePolicy:
    """The exploration stage's learning policy: chooses from a pool, folds feedback, checkpoints its statistics."""

    def __init__(self, stage: ExplorationStage, features: PolicyFeatures, user_map: IdMap, item_map: IdMap) -> None:
        assert stage.learning is not None
        self.name = stage.policy
        self.epsilon = stage.epsilon
        self.settings: LearningSettings = stage.learning
        self.features = features
        self.user_map, self.item_map = user_map, item_map
        self.key = hashlib.sha256(
            f"{features.digest()}|{self.settings.click_reward}|{self.settings.conversion_reward}".encode()
        ).hexdigest()[:32]
        self.closed = False
        self._lock = threading.Lock()
        start = features.initial.copy() if features.initial is not None else None
        self.state = self._derive(start or PoolStats.empty(features.dim, len(item_map)))

    def _derive(self, stats: PoolStats) -> PolicyState:
        s = self.settings
        misses = np.maximum(stats.pulls - stats.wins, 0)
        return PolicyState(stats, ridge_model(stats, s.ridge), s.beta_prior[0] + stats.wins.astype(np.float64),
                           s.beta_prior[1] + misses.astype(np.float64))

    @property
    def cursor(self) -> int:
        """The last log position folded in."""
        return self.state.stats.cursor

    def choose(self, user: int, pool: np.ndarray, k: int, draws: RequestDraws | np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """(slate item ids, per-slot propensities) from ``pool`` (internal ids, preference order) for ``user``."""
        state, s = self.state, self.settings
        if len(pool) == 0:
            return pool[:0], np.zeros(0)
        prior = s.prior_weight / np.log2(2.0 + np.arange(len(pool)))
        if self.name == "linucb":  # deterministic: no generator seeded (that costs more than the choice)
            positions, props = pp.linucb(self.features.phi(user, pool) / SCALE, prior, k, state.model, s.alpha)
            return pool[positions], props
        rng = draws.generator() if isinstance(draws, RequestDraws) else draws
        if self.name == "bernoulli_ts":
            positions, props = pp.bernoulli_ts(state.beta_a[pool], state.beta_b[pool], prior, k,
                                               s.propensity_samples, rng)
        else:
            phi = self.features.phi(user, pool) / SCALE
            if self.name in ("lints", "neural_linear"):  # neural_linear: lints over a learned representation
                positions, props = pp.lints(phi, prior, k, state.model, s.v, s.propensity_samples, rng)
            elif self.name == "ridge_epsilon_greedy":
                positions, props = pp.ridge_epsilon_greedy(phi, prior, k, state.model, self.epsilon, rng)
            else:
                positions, props = pp.squarecb(phi, prior, k, state.model, s.gamma, rng)
        return pool[positions], props

    def fold(self, events: Sequence[LoggedEvent]) -> int:
        """Add logged events (in log order, after the cursor) to the statistics; returns how many counted.

        An impression is a pull of its item; a click adds ``click_reward``, a conversion ``conversion_reward``;
        events on items outside the trained catalogue, and events already folded (position ≤ cursor), count nothing.
        """
        if not events:
            return 0
        with self._lock:
            stats = self.state.stats.copy()
            fresh = [e for e in events if e.seq > stats.cursor]
            if not fresh:
                return 0
            items = self.item_map.to_internal([e.item_id for e in fresh], strict=False)
            users = self.user_map.to_internal([e.user_id for e in fresh], strict=False)
            kinds = np.array([e.event for e in fresh])
            pulls = (kinds == "impression").astype(np.int64)
            rewards = np.where(kinds == "click", self.settings.click_reward,
                               np.where(kinds == "conversion", self.settings.conversion_reward, 0)).astype(np.int64)
            keep = (items >= 0) & ((pulls > 0) | (rewards > 0))
            if keep.any():
                stats.fold(self.features.phi_rows(users[keep], items[keep]), items[keep], pulls[keep], rewards[keep])
            stats.cursor = max(e.seq for e in fresh)
            self.state = self._derive(stats)
            return int(keep.sum())

    def checkpoint(self) -> tuple[int, bytes]:
        """(cursor, the statistics as bytes) of the current state."""
        stats = self.state.stats
        return stats.cursor, stats.to_bytes()

    def restore(self, blob: bytes) -> bool:
        """Take a checkpoint's statistics when they are ahead of ours (True when taken)."""
        stats = PoolStats.from_bytes(blob, self.features.dim, len(self.item_map))
        with self._lock:
            if stats.cursor <= self.cursor:
                return False
            self.state = self._derive(stats)
            return True

    def describe(self) -> dict[str, Any]:
        """Policy, cursor, counted events and the SHA-256 of the statistics (equal digests: identical state)."""
        stats = self.state.stats
        return {"policy": self.name, "key": self.key, "cursor": stats.cursor, "events": stats.events,
                "impressions": int(stats.pulls.sum()), "rewards": int(stats.wins.sum()),
                "digest": hashlib.sha256(stats.to_bytes()).hexdigest()}
