"""A bounded cache of known users' merged candidate rows, so that serving does not repeat the same retrieval.

The pipeline's retrieval of a known user reads nothing but the user's id and the trained sources
(``Retriever.retrieve(user_ids, k)``: no fresh events, no request fields, no clock), and the merge treats each
row on its own, so a user's merged row is the same on every call until the model changes. The cache keeps those
rows in preallocated blocks (item ids, fused scores and each source's score, in the dtypes the merge produced,
so a cached row reads back exactly) and forgets the least recently used user past its capacity. A new model gets
a new cache (it belongs to one ``Pipeline``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from rankstack.pipeline.stages import CandidateTable


def row_bytes(width: int, n_sources: int) -> int:
    """Bytes one cached user takes: int32 item ids, float32 fused scores and float32 scores per source."""
    return width * 4 * (2 + n_sources)


class CandidateCache:
    """Least-recently-used map from internal user ids to their merged candidate rows; thread-safe."""

    def __init__(self, capacity: int, width: int, sources: Sequence[str]) -> None:
        if capacity < 1 or width < 1:
            raise ValueError(f"candidate cache needs capacity >= 1 and width >= 1, got {capacity} and {width}")
        self.capacity, self.width, self.sources = capacity, width, tuple(sources)
        self.hits = 0
        self.misses = 0
        # np.empty reserves address space only: the pages of rows never written cost no memory
        self._ids = np.empty((capacity, width), np.int32)
        self._fused = np.empty((capacity, width), np.float32)
        self._scores = np.empty((len(self.sources), capacity, width), np.float32)
        self._slots: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def nbytes(self) -> int:
        """Bytes the rows held now take."""
        return len(self._slots) * row_bytes(self.width, len(self.sources))

    def get(self, users: np.ndarray) -> tuple[np.ndarray, CandidateTable | None]:
        """Which of ``users`` are cached (bool mask) and their rows as a table (None when none is), in the
        table's dtypes (int64 ids, float64 scores); hits become the most recently used."""
        found = np.zeros(len(users), dtype=bool)
        with self._lock:
            slots = []
            for at, user in enumerate(users.tolist()):
                slot = self._slots.get(user)
                if slot is not None:
                    self._slots.move_to_end(user)
                    found[at] = True
                    slots.append(slot)
            self.hits += len(slots)
            self.misses += len(users) - len(slots)
            if not slots:
                return found, None
            rows = np.asarray(slots, dtype=np.int64)
            table = CandidateTable(self._ids[rows].astype(np.int64), self._fused[rows].astype(np.float64),
                                   {n: self._scores[j, rows].astype(np.float64) for j, n in enumerate(self.sources)})
        return found, table

    def put(self, users: np.ndarray, table: CandidateTable) -> int:
        """Keep each user's row of ``table`` (computed with every source answering); returns how many rows were
        kept — none when the table's width or sources differ from the cache's, or a value would not read back
        exactly (an item id past int32, a score that is not a float32)."""
        if table.item_ids.shape != (len(users), self.width) or set(table.source_scores) != set(self.sources):
            return 0
        ids = table.item_ids.astype(np.int32)
        fused = table.retrieval.astype(np.float32)
        scores = [table.source_scores[n].astype(np.float32) for n in self.sources]
        if not (np.array_equal(ids, table.item_ids) and _same(fused, table.retrieval)
                and all(_same(s, table.source_scores[n]) for s, n in zip(scores, self.sources, strict=True))):
            return 0
        with self._lock:
            for at, user in enumerate(users.tolist()):
                slot = self._slots.get(user)
                if slot is None:
                    if len(self._slots) < self.capacity:
                        slot = len(self._slots)
                    else:
                        _, slot = self._slots.popitem(last=False)
                    self._slots[user] = slot
                self._slots.move_to_end(user)
                self._ids[slot], self._fused[slot] = ids[at], fused[at]
                for j, s in enumerate(scores):
                    self._scores[j, slot] = s[at]
        return len(users)


def _same(narrow: np.ndarray, wide: np.ndarray) -> bool:
    """``narrow`` (float32) holds exactly the values of ``wide`` (NaN where it has NaN)."""
    return bool(np.array_equal(narrow.astype(wide.dtype), wide, equal_nan=True))
