"""The served recommender behind one reference: load fully, smoke-test, swap atomically, close the old one
once its last in-flight request is done.

After each load that will serve, everything alive (the imported libraries' ~230k objects, the model) is moved
out of the cyclic garbage collector's reach (``gc.freeze``): a full collection over them took 80–115 ms on the
serving machine, a stall in the middle of traffic; afterwards a full collection scans only what was allocated
since. Frozen objects are still freed by reference counting (a loaded pipeline holds no reference cycles), so a
replaced model is released as before. Garbage is collected just before each freeze, so none of it is kept, and
automatic collection is paused while the load runs, so that this one collection is the only one it causes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.pipeline.api import Recommender, RecommendRequest

log = logging.getLogger(__name__)
RecommenderLoader = Callable[[Path], Recommender]


def settle_heap() -> None:
    """Collect garbage, then freeze what is alive (see the module docstring): the first call walks every object
    once, before serving; later ones (reloads) walk only what was allocated since the last."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic garbage collection while a serving load runs (``settle_heap`` collects once after it): the load
    allocates enough to trigger full collections that walk the whole growing heap with the GIL held (two of
    110–113 ms in a load of the 41k serve-load artifact on the 2-core box), which during a reload stall the
    requests being served. The collector's previous state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ReloadRefusedError(RankstackError):
    """A new artifact could not be loaded or failed its smoke request; the old one keeps serving."""


@dataclass(eq=False)
class Loaded:
    """One loaded artifact: ``artifact`` is the path it was asked for, ``files`` the folder actually read (a
    private snapshot of it with several workers); ``active`` counts the requests running on it, ``retired`` is
    set once replaced."""

    recommender: Recommender
    artifact: Path
    loaded_at: float
    files: Path | None = None
    active: int = 0
    retired: bool = False

    @property
    def version(self) -> str:
        """The served model's version."""
        return self.recommender.version

    @property
    def digest(self) -> str:
        """The served artifact's content address ("" for a recommender that has none)."""
        return str(getattr(self.recommender, "digest", "") or "")


def _close(loaded: Loaded) -> None:
    """Release a retired recommender's resources (worker threads, files) if it has a ``close``."""
    close = getattr(loaded.recommender, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            log.exception("closing the replaced model %s failed", loaded.artifact)


class ModelSlot:
    """Holds the current ``Loaded``; ``reload`` builds the next one aside and swaps a single reference."""

    def __init__(self, loader: RecommenderLoader, artifact: Path, warmup_user: str, *, warm: bool = True,
                 files: Path | None = None) -> None:
        self.loader = loader
        self.warmup_user = warmup_user
        self.warm = warm
        self._reload_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.current = self._load(artifact, files)

    def _load(self, artifact: Path, files: Path | None = None) -> Loaded:
        """Load ``files`` (default: ``artifact`` itself), run one smoke request and (with ``warm``) its ``warmup``,
        if any; any failure is a ``ReloadRefusedError``."""
        try:
            with _collector_paused() if self.warm else contextlib.nullcontext():
                recommender = self.loader(files or artifact)
                recommender.recommend([RecommendRequest(user_id=self.warmup_user, k=1)], None)
                warmup = getattr(recommender, "warmup", None) if self.warm else None
                if callable(warmup):  # a full request for a known user, so live traffic does not meet cold stages
                    warmup()
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if files is not None:  # name the operator's folder, not the private copy the files were read from
                detail = detail.replace(str(files), str(artifact))
            raise ReloadRefusedError(f"artifact {artifact} refused: {detail}") from exc
        if self.warm:  # a slot that only checks the artifact (warm=False) will not serve: nothing to settle
            settle_heap()
        return Loaded(recommender, artifact, time.time(), files)

    @contextlib.contextmanager
    def use(self) -> Iterator[Loaded]:
        """The current model for the length of one request, even if a reload swaps it meanwhile."""
        with self._count_lock:
            loaded = self.current
            loaded.active += 1
        try:
            yield loaded
        finally:
            with self._count_lock:
                loaded.active -= 1
                close_now = loaded.retired and loaded.active == 0
            if close_now:
                _close(loaded)

    def close(self) -> None:
        """Release the current model once its requests are done (for a slot that will serve no more)."""
        with self._count_lock:
            self.current.retired = True
            close_now = self.current.active == 0
        if close_now:
            _close(self.current)

    def reload(self, artifact: Path | None = None, *, files: Path | None = None) -> tuple[Loaded, Loaded]:
        """Serve ``artifact`` (default: the current path again), read from ``files`` when given (its snapshot);
        returns (previous, new). One reload at a time."""
        with self._reload_lock:
            previous = self.current
            loaded = self._load(artifact or previous.artifact, files)
            with self._count_lock:
                self.current = loaded
                previous.retired = True
                close_now = previous.active == 0
            if close_now:
                _close(previous)
            return previous, loaded
