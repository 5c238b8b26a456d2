"""The feedback log a learning policy folds: the stored events in one total order, and checkpoints of what each
policy learned from them (both built-in stores; ``rankstack.pipeline.online_policy``)."""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable


class LoggedEvent(NamedTuple):
    """One stored event at log position ``seq`` (positions increase in commit order; gaps are allowed)."""

    seq: int
    user_id: str
    item_id: str
    event: str


@runtime_checkable
class FeedbackLog(Protocol):
    """A state store whose events can be read in log order and that keeps learned-state checkpoints."""

    def events_after(self, cursor: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events with position > ``cursor``, in position order."""
        ...

    def read_policy_state(self, key: str) -> bytes | None:
        """The latest checkpoint saved under ``key`` (None: none yet)."""
        ...

    def write_policy_state(self, key: str, cursor: int, state: bytes) -> bool:
        """Save a checkpoint taken at log position ``cursor`` unless one further along is kept (True: saved)."""
        ...


def feedback_log(store: object) -> FeedbackLog | None:
    """``store`` when it offers the feedback log, else None."""
    return store if isinstance(store, FeedbackLog) else None
