"""Deadline-aware admission: refuse a recommend request at once when it cannot be answered within its deadline.

A request that arrives with ``ahead`` requests queued before it waits for ``ahead // B`` full batches (``B`` =
``max_batch``), each followed by the gap the server spends between back-to-back batches (reading and answering
the requests that arrived meanwhile), then runs in its own batch of ``ahead % B + 1``; with the thread batcher the
batch running now has some time left too. Its expected time to an answer is therefore

    E = left of the running batch + (ahead // B) · (t(B) + gap) + t(ahead % B + 1)

with ``t`` the fitted batch cost (``BatchCost``) and ``gap`` an exponentially weighted mean. ``E`` is a mean, and a
busy machine answers later than its batch costs say (the loop's own work, other threads and processes on the same
cores); so each answered request also reports how much longer than its ``E`` it took from admission to answer,
and the admission adds a margin ``m``, the 90th percentile of that overrun over the last 256 answers
(``OverrunMargin``; 0 until answers teach it, at most half the deadline). The request is shed
(``reason="deadline"``) when the time it already spent in the server plus ``E + m`` exceeds the deadline; a request
that finds nothing queued and nothing running is always admitted, so a stale estimate can never stop the
service. ``max_queue`` stays the hard bound (``reason="queue_full"``), with or without shedding, and a queued
request that can no longer be answered in time when its batch comes up is dropped unrun (``reason="expired"``;
see ``Admission.expired``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

import numpy as np

from rankstack.errors import RankstackError
from rankstack.pipeline.cost import HALFLIFE_BATCHES, BatchCost

__all__ = ["HALFLIFE_BATCHES", "RETRY_AFTER_MAX_S", "Admission", "BatchCost", "OverloadedError", "OverrunMargin",
           "PostsInFlight", "ShedReason"]
ShedReason = Literal["deadline", "queue_full", "expired"]
RETRY_AFTER_MAX_S = 30
MARGIN_QUANTILE = 0.9  # the margin is this quantile of the overrun (time from admission to answer − expected)
MARGIN_WINDOW = 256  # … over this many recent answers,
MARGIN_EVERY = 16  # … recomputed every this many answers
MARGIN_CAP = 0.5  # … and at most this share of the deadline (so a spell of slow answers cannot shed everything)


class OverloadedError(RankstackError):
    """The request was refused to keep the queue within its bounds; the client should retry later."""

    def __init__(self, message: str, *, reason: ShedReason = "queue_full", retry_after_s: int = 1,
                 expected_s: float | None = None, deadline_s: float | None = None) -> None:
        super().__init__(message)
        self.reason: ShedReason = reason
        self.retry_after_s = retry_after_s
        self.expected_s = expected_s
        self.deadline_s = deadline_s


class OverrunMargin:
    """How much later than expected requests are answered: the ``quantile`` of ``took − expected`` (seconds) over
    the last ``window`` answers, recomputed every ``every`` answers and clipped to ``[0, cap_s]``; 0 until the
    first ``every`` answers."""

    def __init__(self, cap_s: float, *, quantile: float = MARGIN_QUANTILE, window: int = MARGIN_WINDOW,
                 every: int = MARGIN_EVERY) -> None:
        if cap_s < 0 or not 0 < quantile < 1 or window < 1 or every < 1:
            raise ValueError(f"need cap_s >= 0, 0 < quantile < 1, window >= 1 and every >= 1; got cap_s={cap_s}, "
                             f"quantile={quantile}, window={window}, every={every}")
        self.cap_s, self.quantile, self.every = cap_s, quantile, every
        self._overruns: deque[float] = deque(maxlen=window)
        self._since = 0
        self.value_s = 0.0

    def observe(self, expected_s: float, took_s: float) -> None:
        """One answer, ``took_s`` after an admission that expected ``expected_s``."""
        self._overruns.append(took_s - expected_s)
        self._since += 1
        if self._since >= self.every:
            self._since = 0
            margin = float(np.quantile(np.fromiter(self._overruns, float, len(self._overruns)), self.quantile))
            self.value_s = min(max(margin, 0.0), self.cap_s)


class Admission:
    """Decides whether a recommend request is queued or shed, and learns the batch costs it decides with."""

    def __init__(self, *, max_batch: int, max_queue: int, deadline_s: float | None = None, shed: bool = True,
                 halflife: float = HALFLIFE_BATCHES) -> None:
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.deadline_s = deadline_s if shed else None
        self.cost = BatchCost(halflife)
        self.margin = OverrunMargin(MARGIN_CAP * (self.deadline_s or 0.0))
        self.gap_s = 0.0
        self._gap_weight = 0.5 ** (1.0 / halflife)

    def observe(self, size: int, seconds: float) -> None:
        """A batch of ``size`` requests ran in ``seconds``."""
        self.cost.observe(size, seconds)

    def observe_gap(self, seconds: float) -> None:
        """Time between the end of a batch and the start of the next while requests were waiting."""
        w = self._gap_weight
        self.gap_s = w * self.gap_s + (1.0 - w) * max(seconds, 0.0)

    def expected_s(self, ahead: int, running_left_s: float = 0.0) -> float:
        """Expected time until a request queued behind ``ahead`` others is answered (formula in the module doc)."""
        full, own = divmod(ahead, self.max_batch)
        return running_left_s + full * (self.cost.seconds(self.max_batch) + self.gap_s) + self.cost.seconds(own + 1)

    def answered(self, expected_s: float, took_s: float) -> None:
        """A request admitted on ``expected_s`` (``admit``'s answer) was answered ``took_s`` after its admission."""
        self.margin.observe(expected_s, took_s)

    def admit(self, ahead: int, waited_s: float = 0.0, running_left_s: float = 0.0) -> float:
        """The expected time to an answer (``E``, without the margin) when a request with ``ahead`` requests queued
        before it may queue; else raise ``OverloadedError``."""
        if ahead >= self.max_queue:
            raise OverloadedError(f"{self.max_queue} requests are already waiting; retry shortly",
                                  reason="queue_full", retry_after_s=self.retry_after_s(ahead, running_left_s))
        expected = self.expected_s(ahead, running_left_s)
        if self.deadline_s is None or (ahead == 0 and running_left_s <= 0):
            return expected
        total = waited_s + expected + self.margin.value_s
        if total > self.deadline_s:
            raise OverloadedError(
                f"overloaded: {ahead} requests are queued ahead and the answer would take about {total * 1000:.0f} "
                f"ms, past the {self.deadline_s * 1000:.0f} ms deadline; retry shortly", reason="deadline",
                retry_after_s=self.retry_after_s(ahead, running_left_s), expected_s=total, deadline_s=self.deadline_s)
        return expected

    def expired(self, waited_s: float, batch_size: int = 1) -> OverloadedError | None:
        """The error for a queued request that has waited ``waited_s`` when its batch of ``batch_size`` comes up and
        can no longer be answered in time — its deadline passed, or it has waited at least as long as the batch is
        expected to take and that batch would end past the deadline — or None. (A request that has waited less
        than its batch takes always runs, so a pipeline slower than its deadline still serves requests that find
        it idle, and its estimate stays fresh.)"""
        if self.deadline_s is None:
            return None
        run = self.cost.seconds(batch_size)
        if waited_s < self.deadline_s and (waited_s < run or waited_s + run <= self.deadline_s):
            return None
        return OverloadedError(f"overloaded: waited {waited_s * 1000:.0f} ms in the queue; with its batch (about "
                               f"{run * 1000:.0f} ms) the answer would come past the {self.deadline_s * 1000:.0f} ms "
                               "deadline; retry shortly", reason="expired", retry_after_s=1,
                               expected_s=waited_s + run, deadline_s=self.deadline_s)

    def retry_after_s(self, queued: int, running_left_s: float = 0.0) -> int:
        """Whole seconds until the present queue is expected to have drained (at least 1, at most 30)."""
        drain = self.expected_s(max(queued - 1, 0), running_left_s) if queued else running_left_s
        return max(1, min(RETRY_AFTER_MAX_S, math.ceil(drain)))


class PostsInFlight:
    """Event posts between arrival and acknowledgement (used on the event loop only). A new post is refused when
    ``max_queue`` are in flight (``queue_full``), or when the oldest has been in flight longer than ``deadline_s``
    (``deadline``): the store is not keeping up, and a new post would wait at least as long — past the point where
    clients give up, while the server still spends the CPU to store it. Nothing refused was stored; clients retry
    (ingestion is idempotent on ``event_id``)."""

    def __init__(self, max_queue: int, deadline_s: float | None = None) -> None:
        self.max_queue = max_queue
        self.deadline_s = deadline_s
        self._since: dict[int, float] = {}  # token -> arrival (perf_counter), in arrival order
        self._next = 0

    def __len__(self) -> int:
        return len(self._since)

    def enter(self, now: float) -> int:
        """A token for a post arriving ``now``; ``OverloadedError`` when it must be refused."""
        if len(self._since) >= self.max_queue:
            raise OverloadedError(f"{self.max_queue} event posts are already waiting to be stored; nothing was "
                                  "stored, retry shortly", reason="queue_full")
        if self.deadline_s is not None and self._since:
            oldest = now - next(iter(self._since.values()))
            if oldest > self.deadline_s:
                retry = max(1, min(RETRY_AFTER_MAX_S, math.ceil(oldest)))
                raise OverloadedError(
                    f"overloaded: the oldest of {len(self._since)} event posts in flight has waited "
                    f"{oldest * 1000:.0f} ms to be stored, past the {self.deadline_s * 1000:.0f} ms deadline; "
                    "nothing was stored, retry shortly", reason="deadline", retry_after_s=retry, expected_s=oldest,
                    deadline_s=self.deadline_s)
        token = self._next
        self._next += 1
        self._since[token] = now
        return token

    def leave(self, token: int) -> None:
        """The post holding ``token`` was answered (stored or failed)."""
        self._since.pop(token, None)
