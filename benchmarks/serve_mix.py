"""The traffic of ``serve_load.py``'s open-loop view: recommends, a share of them after a fresh event, and the tally.

Each scheduled request picks a user uniformly from the log's active users (``u0`` … ``u{users-1}``; a share
``unknown`` are never-seen users instead). With probability ``fresh`` it first posts one event for that user to
``/v1/events`` — a click by default, so the user's history changes and the SASRec state cached for it misses; an
impression (``kind="impression"``) feeds the frequency caps but not the history — on an item of the slate last
served to that user (one of its first five), else an item drawn by popularity in the training log; then it asks
``/v1/recommend`` once the event is acknowledged (a site posts the click, then renders the next page).

Latency: an event's counts from its scheduled start; a recommend's from its own start — the scheduled start, or
for one after a fresh event the moment the event was acknowledged — and ``e2e`` from the scheduled start.
A slate counts as *degraded* when a stage says ``degraded`` or ``failed`` or the response names a fallback (a
never-seen user's popularity fallback is expected and counted as ``cold`` instead); a 503 counts as *shed*;
*errors* are every other non-2xx answer, timeouts and connection failures, of recommends and events alike
(``errors_by_cause``: ``timeout``, ``connection``, ``http_<status>``, ``event_…`` for the events).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from open_loop import CONNECT_ERROR, TIMEOUT, Pool, latency_summary, recovery_s, request_bytes

RECOMMEND, EVENT, HEALTH = 0, 1, 2
BAD_STAGES = frozenset({"degraded", "failed"})


@dataclass
class Mix:
    """What one run sends: users, the fresh-event share and kind, the popularity to draw fresh items from."""

    users: int
    k: int = 20
    fresh: float = 0.0
    kind: str = "click"
    unknown: float = 0.0
    popular_items: list[str] = field(default_factory=list)
    popular_p: np.ndarray | None = None
    endpoint: str = "recommend"  # or "healthz": the generator's own floor
    seed: int = 0
    tag: str = "load"
    stamp: str | None = None  # header stamped with when each request is sent (epoch seconds), as a front proxy does

    def __post_init__(self) -> None:
        for name in ("fresh", "unknown"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} share must lie in [0, 1], got {value}")
        if self.kind not in ("click", "impression"):
            raise ValueError(f"fresh event kind must be click or impression, got {self.kind!r}")
        if self.fresh and not self.popular_items:
            raise ValueError("fresh events need popular_items to draw from before a user has a slate")
        if self.endpoint not in ("recommend", "healthz"):
            raise ValueError(f"endpoint must be recommend or healthz, got {self.endpoint!r}")


def _cdf(p: np.ndarray | None) -> np.ndarray | None:
    """The cumulative distribution ``Generator.choice(n, p=p)`` builds on every call (a 41k-item cumsum took a
    fifth of the generator's own CPU), built once: a uniform draw searched in it picks the same items."""
    if p is None:
        return None
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    return cdf / cdf[-1]


class Traffic:
    """Sends the scheduled requests of one run through ``pool`` and keeps one row per HTTP request."""

    HEALTH_RAW = request_bytes("GET", "/healthz")

    def __init__(self, mix: Mix, pool: Pool, offsets: np.ndarray) -> None:
        self.mix, self.pool = mix, pool
        self.offsets = offsets  # scheduled starts, seconds from the run's start (``open_loop.arrival_offsets``)
        self.rng = np.random.default_rng(mix.seed)
        self.last_slate: dict[str, list[str]] = {}
        # rows: kind, scheduled offset s, latency ms (own start), e2e ms, status, degraded, fresh, known
        self.rows: list[tuple[int, float, float, float, int, bool, bool, bool]] = []
        self.reasons: Counter[str] = Counter()
        self.cold = 0
        self.epoch = time.time() - time.perf_counter()  # perf_counter time -> seconds since the epoch
        self.popular_cdf = _cdf(mix.popular_p)

    async def job(self, i: int, scheduled: float) -> None:
        """One scheduled request (with its fresh event first, when drawn); one cut off at the end of the run
        (cancelled) is recorded as a timeout, with the recommend it would have led to."""
        mix, at = self.mix, float(self.offsets[i])
        if mix.endpoint == "healthz":
            reply = await self.pool.call(self.HEALTH_RAW, scheduled)
            ms = (reply.done - scheduled) * 1e3
            self.rows.append((HEALTH, at, ms, ms, reply.status, False, False, True))
            return
        known = not (mix.unknown and self.rng.random() < mix.unknown)
        user = f"u{int(self.rng.integers(mix.users))}" if known else f"new-{mix.tag}-{i}"
        fresh = bool(mix.fresh and self.rng.random() < mix.fresh)
        start, stage = scheduled, EVENT if fresh else RECOMMEND
        try:
            if fresh:
                body = json.dumps({"events": [{"event_id": f"{mix.tag}-{i}", "user_id": user,
                                               "item_id": self._fresh_item(user), "event": mix.kind}]}).encode()
                reply = await self.pool.call(request_bytes("POST", "/v1/events", body, headers=self._stamp()),
                                             scheduled)
                ms = (reply.done - scheduled) * 1e3
                self.rows.append((EVENT, at, ms, ms, reply.status, False, True, known))
                start, stage = reply.done, RECOMMEND
            body = b'{"user_id":"%s","k":%d}' % (user.encode(), mix.k)
            reply = await self.pool.call(request_bytes("POST", "/v1/recommend", body, headers=self._stamp()),
                                         start)
        except asyncio.CancelledError:
            now = time.perf_counter()
            if stage == EVENT:
                self.rows.append((EVENT, at, (now - scheduled) * 1e3, (now - scheduled) * 1e3, TIMEOUT, False, True,
                                  known))
            self.rows.append((RECOMMEND, at, (now - start) * 1e3, (now - scheduled) * 1e3, TIMEOUT, False, fresh,
                              known))
            return
        degraded = False
        if reply.status == 200:
            degraded = self._read_slate(user, reply.body, known)
        self.rows.append((RECOMMEND, at, (reply.done - start) * 1e3, (reply.done - scheduled) * 1e3, reply.status,
                          degraded, fresh, known))

    def _stamp(self) -> tuple[tuple[str, str], ...]:
        """The stamp header of a request sent now, when the mix stamps: the time a front proxy would see it arrive
        (the generator's own lag behind the schedule is the client's, so it is not in the stamp; it stays in the
        latency, which counts from the scheduled start)."""
        if self.mix.stamp is None:
            return ()
        return ((self.mix.stamp, f"t={time.perf_counter() + self.epoch:.6f}"),)

    def _fresh_item(self, user: str) -> str:
        """One of the first five items last served to ``user``, else an item drawn by training popularity."""
        slate = self.last_slate.get(user)
        if slate:
            return slate[int(self.rng.integers(min(5, len(slate))))]
        if self.popular_cdf is None:
            return self.mix.popular_items[int(self.rng.choice(len(self.mix.popular_items)))]
        return self.mix.popular_items[int(self.popular_cdf.searchsorted(self.rng.random(), side="right"))]

    def _read_slate(self, user: str, body: bytes, known: bool) -> bool:
        """Remember the slate's first items for the user's next fresh event; True when the slate is degraded."""
        answer = json.loads(body)
        if self.mix.fresh:
            self.last_slate[user] = [item["item_id"] for item in answer["items"][:5]]
        bad = [f"{stage}/{status}" for stage, status in answer.get("stages", {}).items() if status in BAD_STAGES]
        if answer.get("fallback"):
            bad.append(f"fallback:{answer['fallback']}")
        if bad and not known:
            self.cold += 1
            return False
        self.reasons.update(bad)
        return bool(bad)

    def table(self) -> dict[str, np.ndarray]:
        """The rows as columns."""
        cols = list(zip(*self.rows, strict=True)) if self.rows else [()] * 8
        names = ("kind", "at", "ms", "e2e_ms", "status", "degraded", "fresh", "known")
        types = (np.int8, float, float, float, np.int32, bool, bool, bool)
        return {n: np.asarray(c, dtype=t) for n, c, t in zip(names, cols, types, strict=True)}


def tally(t: dict[str, np.ndarray], lo: float, hi: float, kind: int = RECOMMEND) -> dict[str, Any]:
    """Figures of the ``kind`` requests scheduled in [lo, hi) seconds: offered and achieved rate, latency of the
    2xx answers, errors by cause, shed (503) and degraded counts."""
    sel = (t["kind"] == kind) & (t["at"] >= lo) & (t["at"] < hi)
    status, ms = t["status"][sel], t["ms"][sel]
    ok = (status >= 200) & (status < 300)
    seconds = max(hi - lo, 1e-9)
    out: dict[str, Any] = {"requests": int(sel.sum()), "offered": round(float(sel.sum()) / seconds, 1),
                           "answered": int(ok.sum()), "achieved": round(float(ok.sum()) / seconds, 1),
                           **latency_summary(ms[ok])}
    out["errors"], out["errors_by_cause"] = _errors(status)
    out["shed"] = int((status == 503).sum())
    out["degraded"] = int(t["degraded"][sel].sum())
    if kind == RECOMMEND and t["fresh"][sel].any():
        fresh = t["fresh"][sel]
        out["fresh_requests"] = int(fresh.sum())
        out["fresh_p99_ms"] = latency_summary(ms[ok & fresh])["p99_ms"]
        out["stale_p99_ms"] = latency_summary(ms[ok & ~fresh])["p99_ms"]
        out["e2e_p99_ms"] = latency_summary(t["e2e_ms"][sel][ok & fresh])["p99_ms"]
    return out


def timeline(t: dict[str, np.ndarray], lo: float, hi: float, *, step_s: float = 1.0,
             kind: int = RECOMMEND) -> list[list[float | int | None]]:
    """Per ``step_s`` window of [lo, hi) by scheduled start, the ``kind`` requests as ``[start s, answered, shed,
    errors, p99 ms of the answered, max ms]``: tells a short stall (a few bad windows) from a run that was
    overloaded throughout."""
    sel = (t["kind"] == kind) & (t["at"] >= lo) & (t["at"] < hi)
    at, ms, status = t["at"][sel], t["ms"][sel], t["status"][sel]
    ok = (status >= 200) & (status < 300)
    out: list[list[float | int | None]] = []
    for start in np.arange(lo, hi - 1e-9, step_s):
        inside = (at >= start) & (at < start + step_s)
        good = ms[inside & ok]
        p99 = round(float(np.percentile(good, 99)), 1) if len(good) else None
        peak = round(float(good.max()), 1) if len(good) else None
        shed = int((status[inside] == 503).sum())
        out.append([round(float(start - lo), 3), len(good), shed, int(inside.sum()) - len(good) - shed, p99,
                    peak])
    return out


def _errors(status: np.ndarray) -> tuple[int, dict[str, int]]:
    """Errors (anything but 2xx and 503) in total and by cause: timeout, connection, http_<status>."""
    causes: Counter[str] = Counter()
    for code, n in zip(*np.unique(status, return_counts=True), strict=True):
        code = int(code)
        if 200 <= code < 300 or code == 503:
            continue
        causes["timeout" if code == TIMEOUT else "connection" if code == CONNECT_ERROR else f"http_{code}"] += int(n)
    return sum(causes.values()), dict(causes)


def summarise(t: dict[str, np.ndarray], lo: float, hi: float, *, kind: int = RECOMMEND) -> dict[str, Any]:
    """One run's figures: the recommends (or health checks) in [lo, hi), their events, errors of both added."""
    main = tally(t, lo, hi, kind)
    main["timeline"] = timeline(t, lo, hi, kind=kind)
    if kind == RECOMMEND and (t["kind"] == EVENT).any():
        events = tally(t, lo, hi, EVENT)
        main["events"] = {k: events[k] for k in ("requests", "achieved", "p50_ms", "p99_ms", "max_ms", "errors",
                                                  "errors_by_cause", "shed")}
        main["errors"] += events["errors"]
        main["errors_by_cause"].update({f"event_{k}": v for k, v in events["errors_by_cause"].items()})
    return main


def overload_figures(t: dict[str, np.ndarray], *, before_s: float, overload_s: float, after_s: float,
                     threshold_ms: float) -> dict[str, Any]:
    """The overload phase's shed share, p99 of the answered requests and errors, and the time after it until a
    1 s sliding window's p99 is back under ``threshold_ms`` with nothing shed or failed (``recovery_s``)."""
    end = before_s + overload_s
    during = tally(t, before_s, end)
    after = tally(t, end, end + after_s)
    rec = t["kind"] == RECOMMEND
    status = t["status"][rec]
    ok = (status >= 200) & (status < 300)
    recovered = recovery_s(t["at"][rec], t["ms"][rec], ok, after_s=end, until_s=end + after_s,
                           threshold_ms=threshold_ms)
    return {"offered": during["offered"], "duration_s": overload_s, "requests": during["requests"],
            "shed": during["shed"], "shed_share": round(during["shed"] / max(during["requests"], 1), 4),
            "answered": during["answered"], "p99_answered_ms": during["p99_ms"],
            "p999_answered_ms": during["p999_ms"], "errors": during["errors"],
            "errors_by_cause": during["errors_by_cause"], "degraded": during["degraded"],
            "recovery_s": recovered, "recovery_threshold_ms": threshold_ms,
            "after": {k: after[k] for k in ("offered", "achieved", "p50_ms", "p99_ms", "errors", "shed", "degraded")}}
