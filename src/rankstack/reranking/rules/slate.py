"""Filling the k slots of one slate from a ranked list under caps, slot limits, pins and minimum shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rankstack.reranking.reranker import Action


@dataclass(frozen=True)
class CapSpec:
    """At most ``limit`` slate items per value of an attribute; item i has codes ``codes[indptr[i]:indptr[i+1]]``."""

    name: str
    attribute: str
    limit: int
    indptr: np.ndarray
    codes: np.ndarray
    names: list[str]
    applies: np.ndarray  # bool per code: the cap counts this value


@dataclass(frozen=True)
class SlotSpec:
    """Items in ``mask``: at most ``max_count`` in the slate and never at a slot in ``forbidden``."""

    name: str
    mask: np.ndarray
    max_count: int | None
    forbidden: frozenset[int]
    label: str


@dataclass(frozen=True)
class ShareSpec:
    """At least ``share`` of the slate's items are in ``mask``."""

    name: str
    mask: np.ndarray
    share: float
    label: str


@dataclass(frozen=True)
class SlateSpec:
    """All slate-level constraints of a rule set."""

    caps: list[CapSpec] = field(default_factory=list)
    slots: list[SlotSpec] = field(default_factory=list)
    shares: list[ShareSpec] = field(default_factory=list)


@dataclass(frozen=True)
class Note:
    """A decision taken while filling the slate (turned into an ``Explanation`` by the caller)."""

    item: int
    rule: str
    action: Action
    reason: str
    from_rank: int | None
    to_rank: int | None


@dataclass(frozen=True)
class _Block:
    rule: str
    permanent: bool
    reason: str


class _Counter:
    """Per-slate counts behind the constraint checks."""

    def __init__(self, spec: SlateSpec, outside_limits: list[int]) -> None:
        self.spec = spec
        self.cap_counts: list[dict[int, int]] = [{} for _ in spec.caps]
        self.slot_counts = [0] * len(spec.slots)
        self.outside = [0] * len(spec.shares)
        self.outside_limits = outside_limits

    def blocker(self, item: int, slot: int) -> _Block | None:
        """Why ``item`` cannot go to ``slot`` now (permanent: never in this slate), or None."""
        for c, cap in enumerate(self.spec.caps):
            for code in cap.codes[cap.indptr[item] : cap.indptr[item + 1]]:
                if cap.applies[code] and self.cap_counts[c].get(int(code), 0) >= cap.limit:
                    return _Block(cap.name, True, f"limit of {cap.limit} for {cap.attribute}={cap.names[code]} reached")
        for s, spec in enumerate(self.spec.slots):
            if spec.mask[item]:
                if spec.max_count is not None and self.slot_counts[s] >= spec.max_count:
                    return _Block(spec.name, True, f"limit of {spec.max_count} for {spec.label} reached")
                if slot in spec.forbidden:
                    return _Block(spec.name, False, f"{spec.label} not allowed in slot {slot}")
        for s, share in enumerate(self.spec.shares):
            if not share.mask[item] and self.outside[s] >= self.outside_limits[s]:
                return _Block(share.name, True, f"would leave under {share.share:.0%} items with {share.label}")
        return None

    def place(self, item: int) -> None:
        """Count ``item`` as shown."""
        for c, cap in enumerate(self.spec.caps):
            for code in cap.codes[cap.indptr[item] : cap.indptr[item + 1]]:
                self.cap_counts[c][int(code)] = self.cap_counts[c].get(int(code), 0) + 1
        for s, spec in enumerate(self.spec.slots):
            self.slot_counts[s] += int(spec.mask[item])
        for s, share in enumerate(self.spec.shares):
            self.outside[s] += int(not share.mask[item])


def _fill(ranked: np.ndarray, k: int, spec: SlateSpec, pins: list[tuple[str, int, int]],
          outside_limits: list[int]) -> tuple[list[int], list[Note]]:
    """One pass: pins first (rule, slot, item), then slots in order from ``ranked``; a blocked slot ends it."""
    counter = _Counter(spec, outside_limits)
    def rank(item: int) -> int | None:
        where = np.flatnonzero(ranked == item)
        return int(where[0]) + 1 if where.size else None

    slate = [-1] * k
    notes: list[Note] = []
    pinned: dict[int, str] = {}
    for rule, slot, item in pins:
        block = counter.blocker(item, slot)
        if slot > k or slate[slot - 1] >= 0 or item in pinned or block is not None:
            why = block.reason if block else ("slot beyond the slate" if slot > k else "slot or item already pinned")
            notes.append(Note(item, rule, "rejected", f"pin to slot {slot} refused: {why}", rank(item), None))
            continue
        slate[slot - 1] = item
        pinned[item] = rule
        counter.place(item)
        notes.append(Note(item, rule, "pinned", f"pinned to slot {slot}", rank(item), slot))
    deferred: list[tuple[int, _Block]] = []
    pos = 0
    for slot in range(1, k + 1):
        if slate[slot - 1] >= 0:
            continue
        placed = -1
        waiting: list[tuple[int, _Block]] = []
        for item, held in deferred:
            block = counter.blocker(item, slot) if placed < 0 else held
            if block is None:
                placed = item
                notes.append(Note(item, held.rule, "moved", held.reason, rank(item), slot))
            elif block.permanent:
                notes.append(Note(item, block.rule, "capped", block.reason, rank(item), None))
            else:
                waiting.append((item, held))
        deferred = waiting
        while placed < 0 and pos < len(ranked):
            item = int(ranked[pos])
            pos += 1
            if item in pinned:
                continue
            block = counter.blocker(item, slot)
            if block is None:
                placed = item
            elif block.permanent:
                notes.append(Note(item, block.rule, "capped", block.reason, rank(item), None))
            else:
                deferred.append((item, block))
        if placed < 0:
            for s in range(slot, k + 1):
                if slate[s - 1] >= 0:
                    item = slate[s - 1]
                    why = f"slate ended before slot {s}"
                    notes.append(Note(item, pinned[item], "rejected", why, rank(item), None))
                    slate[s - 1] = -1
            break
        slate[slot - 1] = placed
        counter.place(placed)
    notes.extend(Note(item, b.rule, "moved", b.reason, rank(item), None) for item, b in deferred)
    return slate, notes


def compose(ranked: np.ndarray, k: int, spec: SlateSpec,
            pins: list[tuple[str, int, int]] | None = None) -> tuple[list[int], list[Note]]:
    """Slate of ``k`` items (``-1`` after the last fillable slot) and the notes of the final pass.

    Minimum shares are enforced on the shown slate: each pass allows at most L items outside a share rule's
    set, starting from L = k − ⌈s·k⌉ and shrinking to ⌊M·(1−s)/s⌋ (M = matching items shown) until the share
    holds; L only decreases, so it ends (at worst with L = 0).
    """
    pins = pins or []
    if not (pins or spec.caps or spec.slots or spec.shares):  # nothing to enforce: the ranked head is the slate
        head = [int(i) for i in ranked[:k]]
        return head + [-1] * (k - len(head)), []
    limits = [k - math.ceil(s.share * k - 1e-9) for s in spec.shares]
    while True:
        slate, notes = _fill(ranked, k, spec, pins, limits)
        shown = [i for i in slate if i >= 0]
        retry = False
        for s, share in enumerate(spec.shares):
            inside = sum(int(share.mask[i]) for i in shown)
            if shown and inside < share.share * len(shown) - 1e-9:
                limits[s] = min(limits[s] - 1, math.floor(inside * (1 - share.share) / share.share + 1e-9))
                retry = True
        if not retry:
            return slate, notes
