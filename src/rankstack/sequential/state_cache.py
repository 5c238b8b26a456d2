"""A bounded cache of a sequential model's user states, keyed by the exact history the model reads.

A user's state (the last hidden vector of SASRec) depends only on the model weights and the last ``max_len``
items of the history, so serving can keep it between requests: a repeat request is a dictionary lookup, and a
fresh click changes the key, so the next request computes the new state — no invalidation by user is needed.
The owning model clears the cache whenever its weights change (``fit``, ``load_state_tensors``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


def history_key(history: np.ndarray, max_len: int) -> bytes:
    """The cache key of a history: the bytes of its last ``max_len`` item ids as int64."""
    return np.ascontiguousarray(np.asarray(history, dtype=np.int64)[-max_len:]).tobytes()


class StateCache:
    """Least-recently-used map from history keys to state vectors (float32 [D]); thread-safe."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"state cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._states: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:
        """Copies and pickles carry the capacity only (states belong to one model's weights; locks don't copy)."""
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["capacity"])  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._states)

    def get_many(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        """The cached state of each key, None where it is missing; hits become the most recently used."""
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                state = self._states.get(key)
                if state is not None:
                    self._states.move_to_end(key)
                out.append(state)
            found = sum(s is not None for s in out)
            self.hits += found
            self.misses += len(keys) - found
        return out

    def put_many(self, keys: Sequence[bytes], states: np.ndarray) -> None:
        """Store one state row per key, evicting the least recently used entries past ``capacity``."""
        if len(keys) != len(states):
            raise ValueError(f"{len(keys)} keys for {len(states)} states")
        with self._lock:
            for key, state in zip(keys, states, strict=True):
                self._states[key] = state
                self._states.move_to_end(key)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def clear(self) -> None:
        """Forget every state (the model's weights changed)."""
        with self._lock:
            self._states.clear()
            self.hits = self.misses = 0


@runtime_checkable
class CachesStates(Protocol):
    """A model whose user states a pipeline can cache (SASRec)."""

    state_cache: StateCache | None

    def enable_state_cache(self, capacity: int) -> None:
        """Keep up to ``capacity`` states between calls; 0 turns caching off."""
        ...

    def user_states(self, histories: Sequence[np.ndarray], batch_size: int = ...) -> Any:
        """One state per history, computed or taken from the cache."""
        ...
