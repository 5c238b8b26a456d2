"""Online state in Redis (redis-py): one Lua script stores a batch atomically and idempotently.

Layout (``prefix`` defaults to ``rankstack:``): ``e:{event_id}`` holds the event as JSON (``SET NX``
is the idempotency check; the key expires after ``retention_s``, the duplicate window); ``h:{user_id}:{event}``
is a sorted set of the user's events of one kind, scored by timestamp, capped at ``max_history`` per user and
kind; ``b:pulls`` / ``b:reward`` are hashes of bandit statistics per item; ``log`` is the feedback log, a stream
of every new event (user, item, kind) whose entry id ``{seq}-1`` is its log position, trimmed to about
``max_log`` entries; ``p:{key}`` holds a learning policy's checkpoint (cursor and base64 state). Single-instance
Redis only (the script touches keys it computes).

Durability: Redis acknowledges a write before it is on disk unless it runs with ``appendonly yes`` and
``appendfsync always``; only then does an acknowledged event survive a crash. ``durability_problem``
says when the server is configured otherwise.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rankstack.events import Event
from rankstack.state.feedback_log import LoggedEvent
from rankstack.state.shared import (
    DEFAULT_MAX_HISTORY,
    DEFAULT_RETENTION_S,
    StateStoreError,
    merge_recent,
    with_timestamps,
)

_ADD_EVENTS = """
local prefix, cap, ttl, logmax, posts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local news, i = {}, 6 + posts
for p = 1, posts do
  local new = 0
  for _ = 1, tonumber(ARGV[5 + p]) do
    local eid, uid, item, kind, ts, record = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    i = i + 6
    local stored
    if ttl > 0 then
      stored = redis.call('SET', prefix .. 'e:' .. eid, record, 'NX', 'EX', ttl)
    else
      stored = redis.call('SET', prefix .. 'e:' .. eid, record, 'NX')
    end
    if stored then
      new = new + 1
      local seq = redis.call('INCR', prefix .. 'seq')
      local key = prefix .. 'h:' .. uid .. ':' .. kind
      redis.call('ZADD', key, ts, string.format('%016d', seq) .. ':' .. item)
      if redis.call('ZCARD', key) > cap then redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1) end
      if kind == 'impression' then redis.call('HINCRBYFLOAT', prefix .. 'b:pulls', item, 1) end
      if kind == 'click' then redis.call('HINCRBYFLOAT', prefix .. 'b:reward', item, 1) end
      redis.call('XADD', prefix .. 'log', 'MAXLEN', '~', logmax, seq .. '-1', 'u', uid, 'i', item, 'e', kind)
    end
  end
  news[p] = new
end
return news
"""


_SAVE_POLICY = """
local current = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[1], 'state', ARGV[2])
  return 1
end
return 0
"""
DEFAULT_MAX_LOG = 1_000_000


def _split_member(member: str) -> tuple[int, str]:
    """``"0000000000000042:item"`` → ``(42, "item")``."""
    return int(member[:16]), member[17:]


class RedisStateStore:
    """``StateStore`` on a Redis server (``redis://host:port/db``); every Redis error becomes ``StateStoreError``."""

    @classmethod
    def from_url(cls, url: str) -> RedisStateStore:
        """The store at a ``redis://``, ``rediss://`` or ``unix://`` URL."""
        return cls(url)

    def __init__(self, url: str, *, prefix: str = "rankstack:", max_history: int = DEFAULT_MAX_HISTORY,
                 timeout_s: float = 1.0, retention_s: float | None = DEFAULT_RETENTION_S,
                 max_log: int = DEFAULT_MAX_LOG) -> None:
        self.url = url
        self.max_log = max_log
        self.prefix = prefix
        self.max_history = max_history
        self.retention_s = retention_s
        self._client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
            # retry once on a dropped connection (a restarted server), never after a timeout (a hung one)
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._add = self._client.register_script(_ADD_EVENTS)
        self._save_policy = self._client.register_script(_SAVE_POLICY)

    def add_events(self, events: Sequence[Event]) -> int:
        """Store the batch with one atomic script call; returns how many ``event_id``s were new."""
        return self.add_event_batches([events])[0]

    def add_event_batches(self, batches: Sequence[Sequence[Event]]) -> list[int]:
        """Several posts' events in one atomic script call (one round trip for posts queued behind a write); the
        new events of each. On an error each post counts as failed; any part the server did store is kept, and a
        retry stores nothing twice (ids are idempotent)."""
        ttl = math.ceil(self.retention_s) if self.retention_s and self.retention_s > 0 else 0  # 0: keep forever
        now = time.time()
        stamped = [with_timestamps(events, now) for events in batches]
        args: list[Any] = [self.prefix, self.max_history, ttl, self.max_log, len(stamped)]
        args += [len(events) for events in stamped]
        for events in stamped:
            for e in events:
                args += [e.event_id, e.user_id, e.item_id, e.event, repr(e.timestamp), e.model_dump_json()]
        news = self._call(self._add, args=args)
        if len(news) != len(stamped):
            raise StateStoreError(f"Redis state store {self.url}: the write answered {len(news)} counts for "
                                  f"{len(stamped)} posts")
        return [int(n) for n in news]

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        """The user's last ``n`` items with an event in ``events``, oldest first."""
        return self.recent_items_many([user_id], n, events=events)[0]

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        """Item id → the user's number of ``events`` at or after ``since`` (within the last ``max_history``)."""
        return self.exposure_counts_many([user_id], since=since, events=events)[0]

    def recent_items_many(self, user_ids: Sequence[str], n: int, *,
                          events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
        """``recent_items`` of each user, every user's reads in one pipelined round trip."""
        if n <= 0 or not events or not user_ids:
            return [[] for _ in user_ids]
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            for kind in events:
                pipe.zrevrange(self._history_key(user, kind), 0, n - 1, withscores=True)
        results = self._call(pipe.execute)
        out = []
        for at in range(0, len(results), len(events)):
            rows = [(float(score), *_split_member(member)) for result in results[at: at + len(events)]
                    for member, score in result]
            out.append(merge_recent(rows, n))
        return out

    def latest_times_many(self, user_ids: Sequence[str], *,
                          events: Sequence[str] = ("click", "conversion")) -> list[float | None]:
        """Each user's latest event time of a kind in ``events`` (None: none kept), in one pipelined round trip."""
        if not events or not user_ids:
            return [None for _ in user_ids]
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            for kind in events:
                pipe.zrevrange(self._history_key(user, kind), 0, 0, withscores=True)
        results = self._call(pipe.execute)
        out: list[float | None] = []
        for at in range(0, len(results), len(events)):
            scores = [float(score) for result in results[at: at + len(events)] for _member, score in result]
            out.append(max(scores) if scores else None)
        return out

    def exposure_counts_many(self, user_ids: Sequence[str], *, since: float,
                             events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
        """``exposure_counts`` of each user, every user's reads in one pipelined round trip."""
        if not events or not user_ids:
            return [{} for _ in user_ids]
        pipe = self._client.pipeline(transaction=False)
        for user in user_ids:
            for kind in events:
                pipe.zrangebyscore(self._history_key(user, kind), since, "+inf")
        results = self._call(pipe.execute)
        out = []
        for at in range(0, len(results), len(events)):
            counts: dict[str, int] = {}
            for members in results[at: at + len(events)]:
                for member in members:
                    item = _split_member(member)[1]
                    counts[item] = counts.get(item, 0) + 1
            out.append(counts)
        return out

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Arm → (impressions, clicks) since the keys were created; arms never seen get (0, 0)."""
        if not arm_ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self.prefix + "b:pulls", list(arm_ids))
        pipe.hmget(self.prefix + "b:reward", list(arm_ids))
        pulls, rewards = self._call(pipe.execute)
        return {arm: (float(p or 0), float(r or 0)) for arm, p, r in zip(arm_ids, pulls, rewards, strict=True)}

    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` are in the store (used to audit durability)."""
        pipe = self._client.pipeline(transaction=False)
        for eid in event_ids:
            pipe.exists(self.prefix + "e:" + eid)
        return {eid for eid, hit in zip(event_ids, self._call(pipe.execute), strict=True) if hit}

    def events_after(self, cursor: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events of the feedback log after position ``cursor``, in order (the script stores each
        event and its log entry atomically, so positions appear in order)."""
        entries = self._call(self._client.xrange, self.prefix + "log", f"{int(cursor) + 1}-0", "+", count=int(limit))
        return [LoggedEvent(int(eid.split("-")[0]), f["u"], f["i"], f["e"]) for eid, f in entries]

    def read_policy_state(self, key: str) -> bytes | None:
        """The latest learned-state checkpoint saved under ``key``."""
        state = self._call(self._client.hget, f"{self.prefix}p:{key}", "state")
        return None if state is None else base64.b64decode(state)

    def write_policy_state(self, key: str, cursor: int, state: bytes) -> bool:
        """Save a checkpoint taken at log position ``cursor`` unless the kept one is as far along (atomic)."""
        saved = self._call(self._save_policy, keys=[f"{self.prefix}p:{key}"],
                           args=[int(cursor), base64.b64encode(state).decode("ascii")])
        return bool(saved)

    def healthy(self) -> bool:
        """True when the server answers PING."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def durability_problem(self) -> str | None:
        """Why acknowledged events could be lost on a crash with this server's settings, or None."""
        config = self._call(self._client.config_get, "append*")
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            return (f"Redis at {self.url} runs with appendonly={config.get('appendonly')} "
                    f"appendfsync={config.get('appendfsync')}: acknowledged events can be lost on a crash; "
                    "use appendonly yes and appendfsync always")
        return None

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _history_key(self, user_id: str, kind: str) -> str:
        """Sorted set of the user's events of one kind (``kind`` never contains ':', so keys cannot collide)."""
        return f"{self.prefix}h:{user_id}:{kind}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call redis-py; its errors become ``StateStoreError`` naming the server."""
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StateStoreError(f"Redis state store {self.url}: {exc}") from exc
