"""Online learning in the service: a background thread per served learning policy folds the state store's feedback
log into it and checkpoints what it learned, off the request path.

Every worker folds the same log (the store's events in commit order) into exact integer sums, so all workers at
the same log position hold bit-identical state; a checkpoint (statistics + log position) kept in the store lets
a restarted or replacement worker, or one killed with ``kill -9``, resume where the last checkpoint stood and
fold the rest. Requests only read the policy's current state (``OnlinePolicy.state``): a slow or hung store
delays learning, never a recommendation. A store without the feedback log (``FeedbackLog``) serves the
artifact's state and says so once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rankstack.state.feedback_log import FeedbackLog, feedback_log

if TYPE_CHECKING:  # the pipeline's config imports torch: a service over another recommender never loads it
    from rankstack.pipeline.online_policy import OnlinePolicy

log = logging.getLogger(__name__)
BATCH = 2_000  # log rows read per fold
RETRY_MAX_S = 10.0


class PolicyFollower:
    """Restores ``policy`` from its latest checkpoint, then folds new log events every ``sync_every_s`` and saves a
    checkpoint every ``checkpoint_every_s`` (and once more when stopped)."""

    def __init__(self, policy: OnlinePolicy, store: FeedbackLog) -> None:
        self.policy, self.store = policy, store
        self.saved_cursor = -1
        self.restored = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rankstack-learn-{policy.name}", daemon=True)

    def start(self) -> None:
        """Start following the log."""
        self._thread.start()

    def _running(self) -> bool:
        return not self._stop.is_set() and not self.policy.closed

    def _retry(self, failures: int, what: str, exc: Exception) -> None:
        pause = min(self.policy.settings.sync_every_s * 2.0 ** failures, RETRY_MAX_S)
        log.warning("online policy %s: %s failed (%s); retrying in %.1f s", self.policy.name, what, exc, pause)
        self._stop.wait(pause)

    def _restore(self) -> None:
        """Take the store's checkpoint (retried until the store answers: folding before it could miss pruned
        events that the checkpoint holds)."""
        failures = 0
        while self._running():
            try:
                blob = self.store.read_policy_state(self.policy.key)
                if blob is not None and self.policy.restore(blob):
                    log.info("online policy %s: resumed at log position %d", self.policy.name, self.policy.cursor)
                self.restored.set()  # the next checkpoint is offered to the store, which keeps the furthest along
                return
            except Exception as exc:
                self._retry(failures, "reading its checkpoint", exc)
                failures += 1

    def _checkpoint(self) -> None:
        cursor, blob = self.policy.checkpoint()
        if cursor > self.saved_cursor:
            self.store.write_policy_state(self.policy.key, cursor, blob)
            self.saved_cursor = cursor

    def step(self) -> int:
        """Fold the next batch of the log; returns how many rows were read."""
        rows = self.store.events_after(self.policy.cursor, BATCH)
        self.policy.fold(rows)
        return len(rows)

    def _run(self) -> None:
        self._restore()
        settings = self.policy.settings
        saved_at, failures = time.monotonic(), 0
        while self._running():
            try:
                read = self.step()
                if time.monotonic() - saved_at >= settings.checkpoint_every_s:
                    self._checkpoint()
                    saved_at = time.monotonic()
                failures = 0
            except Exception as exc:
                self._retry(failures, "folding the feedback log", exc)
                failures += 1
                continue
            if read < BATCH:
                self._stop.wait(settings.sync_every_s)
        if self.restored.is_set():
            try:
                self._checkpoint()
            except Exception as exc:
                log.warning("online policy %s: final checkpoint failed (%s)", self.policy.name, exc)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop, saving a last checkpoint (waits at most ``timeout_s`` for a hung store)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


class OnlineLearning:
    """The followers of a service: one per served recommender that has a learning policy."""

    def __init__(self, store: Any) -> None:
        self.store = feedback_log(store)
        self._followers: dict[int, PolicyFollower] = {}
        self._lock = threading.Lock()
        self._warned = False

    def follow(self, recommender: Any) -> PolicyFollower | None:
        """Start learning for ``recommender`` if it serves a learning policy (stopped followers are dropped)."""
        policy = getattr(recommender, "online", None)
        if policy is None or not callable(getattr(policy, "fold", None)):
            return None
        if self.store is None:
            if not self._warned:
                log.warning("online policy %s: the state store keeps no feedback log; serving the artifact's "
                            "state without learning", policy.name)
                self._warned = True
            return None
        with self._lock:
            self._followers = {k: f for k, f in self._followers.items() if not f.policy.closed}
            if id(policy) in self._followers:
                return self._followers[id(policy)]
            follower = self._followers[id(policy)] = PolicyFollower(policy, self.store)
        follower.start()
        return follower

    def stop(self) -> None:
        """Stop every follower (each saves a last checkpoint)."""
        with self._lock:
            followers = list(self._followers.values())
        for follower in followers:
            follower.stop()
