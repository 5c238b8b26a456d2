"""Hot reload across worker processes, through a control folder they share.

The worker that receives ``POST /admin/reload`` copies the artifact into the service's snapshot folder (see
``snapshots``), loads and smoke-tests the copy itself (a refusal publishes nothing); then it writes ``target.json``
(the artifact, the copy's folder ``files`` and a generation number; written aside, then renamed) and removes the
copy published before.
Every worker polls that file and, when the generation moves, reloads through its ``ModelSlot`` (in-flight
requests finish on the old model) and writes ``ack-PID.json``: the generation, the version it serves and the
error if its own reload failed (it then keeps its old model). The receiving worker answers once every live
worker has acknowledged the generation, or after ``wait_s``. A worker that starts later (the supervisor replaced a
dead one) loads the published copy, never the operator's folder, which may have changed since.

The same folder is the workers' load board: each writes its request rate to ``load-PID.json`` and reads the others'
(``rankstack.serving.rebalance``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankstack.serving.model_slot import Loaded, ModelSlot, RecommenderLoader, ReloadRefusedError
from rankstack.serving.snapshots import drop_snapshot, take_snapshot

log = logging.getLogger(__name__)
POLL_S = 0.25
WAIT_S = 30.0


@dataclass(frozen=True)
class Ack:
    """One worker's last word: the generation it reached, the version it serves, its reload error if any."""

    pid: int
    generation: int
    version: str
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a published generation went: live workers asked, workers now serving it, one line per problem."""

    workers: int
    switched: int
    problems: list[str]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it over ``path`` (atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _files(target: dict[str, Any]) -> Path | None:
    """The folder a published target is loaded from (its snapshot), if it names one."""
    return Path(target["files"]) if target.get("files") else None


def publish_start(control_dir: Path, artifact: Path, files: Path) -> None:
    """Publish generation 0: the artifact the service starts on and its snapshot (the supervisor, before workers)."""
    _write_json(control_dir / "target.json", {"generation": 0, "artifact": str(artifact), "files": str(files)})


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it does not exist (yet)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


class ReloadGroup:
    """One worker's side of the protocol: publish a reload, follow the others', acknowledge."""

    def __init__(self, control_dir: Path, *, poll_s: float = POLL_S, wait_s: float = WAIT_S,
                 snapshots: Path | None = None) -> None:
        self.dir = control_dir
        self.snapshots = snapshots  # where reloads copy artifacts to (None: load them in place)
        self.poll_s = poll_s
        self.wait_s = wait_s
        self.pid = os.getpid()
        self.generation = 0
        self._lock = threading.Lock()  # one reload at a time in this worker: its own or a followed one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._members: set[int] = set()  # the serving workers last seen by the follower

    @property
    def target_path(self) -> Path:
        """Where the artifact every worker should serve is published."""
        return self.dir / "target.json"

    def open_slot(self, loader: RecommenderLoader, default: Path, warmup_user: str) -> ModelSlot:
        """A slot serving what was last published (``default`` when nothing was): a worker that starts late (the
        supervisor replaced a dead one) serves what the others serve, read from the published snapshot. If that
        does not load, ``ReloadRefusedError``: serving another version (``default`` may have changed on disk
        since) would split the service."""
        target = _read_json(self.target_path)
        if target is None:
            return ModelSlot(loader, default, warmup_user)
        slot = ModelSlot(loader, Path(target["artifact"]), warmup_user, files=_files(target))
        self.generation = int(target["generation"])
        return slot

    def start(self, slot: ModelSlot, on_reload: Callable[[Loaded], None],
              on_join: Callable[[], None] = lambda: None, on_poll: Callable[[], None] = lambda: None) -> None:
        """Acknowledge the model served now and follow published reloads in a background thread; ``on_join`` is
        called there when another worker starts serving (e.g. a replacement), ``on_poll`` at every look."""
        self._ack(slot.current.recommender.version)
        self._thread = threading.Thread(target=self._follow, args=(slot, on_reload, on_join, on_poll),
                                        name="rankstack-reload-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following and withdraw this worker's acknowledgement and load (it no longer serves)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        (self.dir / f"ack-{self.pid}.json").unlink(missing_ok=True)
        (self.dir / f"load-{self.pid}.json").unlink(missing_ok=True)

    def publish_load(self, rate: float) -> None:
        """Put this worker's request rate (a second) on the board."""
        _write_json(self.dir / f"load-{self.pid}.json", {"pid": self.pid, "rate": rate})

    def peer_loads(self, max_age_s: float) -> list[float]:
        """The request rates the other running workers published within ``max_age_s``."""
        rates, now = [], time.time()
        for path in self.dir.glob("load-*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
                data = json.loads(path.read_text())
                pid = int(data["pid"])
                if pid != self.pid and now - path.stat().st_mtime <= max_age_s and pid_alive(pid):
                    rates.append(float(data["rate"]))
        return rates

    def reload(self, slot: ModelSlot, artifact: Path | None) -> tuple[Loaded, Loaded, int]:
        """Reload here from a fresh snapshot (``ReloadRefusedError`` publishes nothing), then publish; returns
        (previous, new, generation)."""
        with self._lock:
            source = artifact or slot.current.artifact
            files = take_snapshot(source, self.snapshots) if self.snapshots is not None else None
            try:
                previous, loaded = slot.reload(source, files=files)
            except ReloadRefusedError:
                drop_snapshot(files, self.snapshots)
                raise
            with self._exclusive():
                published = _read_json(self.target_path)
                generation = max(self.generation, int(published["generation"]) if published else 0) + 1
                target = {"generation": generation, "artifact": str(loaded.artifact)}
                _write_json(self.target_path, {**target, "files": str(files)} if files is not None else target)
                replaced = _files(published) if published else None
                if replaced != files:
                    drop_snapshot(replaced, self.snapshots)
            self.generation = generation
            self._ack(loaded.recommender.version)
        return previous, loaded, generation

    def wait(self, generation: int) -> Outcome:
        """Wait until every live worker has acknowledged ``generation`` (at most ``wait_s``) and say how it went."""
        deadline = time.monotonic() + self.wait_s
        acks = self.live_acks()
        while any(a.generation < generation for a in acks) and time.monotonic() < deadline:
            time.sleep(0.05)
            acks = self.live_acks()
        problems = []
        for a in acks:
            if a.generation < generation:
                problems.append(f"worker {a.pid} did not answer within {self.wait_s:g} s (serves {a.version!r})")
            elif a.error is not None:
                problems.append(f"worker {a.pid} kept {a.version!r}: {a.error}")
            elif a.generation > generation:
                problems.append(f"worker {a.pid} moved on to a later reload (serves {a.version!r})")
        return Outcome(workers=len(acks), switched=len(acks) - len(problems), problems=problems)

    def serving(self) -> int:
        """How many workers serve now (running and past loading their model)."""
        return len(self.live_acks())

    def live_acks(self) -> list[Ack]:
        """The acknowledgements of workers still running (a crashed worker's file is ignored)."""
        acks = []
        for path in sorted(self.dir.glob("ack-*.json")):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                data = json.loads(path.read_text())
                if pid_alive(int(data["pid"])):
                    acks.append(Ack(int(data["pid"]), int(data["generation"]), str(data["version"]), data.get("error")))
        return acks

    def _ack(self, version: str, error: str | None = None) -> None:
        """Record this worker's generation, served version and reload error."""
        _write_json(self.dir / f"ack-{self.pid}.json",
                    {"pid": self.pid, "generation": self.generation, "version": version, "error": error})

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the control folder's lock (across processes) so two reloads never take the same generation."""
        with (self.dir / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _follow(self, slot: ModelSlot, on_reload: Callable[[Loaded], None], on_join: Callable[[], None],
                on_poll: Callable[[], None]) -> None:
        """Poll the target; reload when another worker published a newer generation; call ``on_join`` when a worker
        joins and ``on_poll`` every time; stop if orphaned."""
        parent = os.getppid()
        while not self._stop.wait(self.poll_s):
            if os.getppid() != parent:
                log.error("the server's parent process is gone: worker %d stops", os.getpid())
                os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                self._follow_once(slot, on_reload)
                if self._joined():
                    on_join()
                on_poll()
            except Exception:
                log.exception("following a published reload failed; retrying")

    def _joined(self) -> bool:
        """Whether a worker other than this one started serving since the last look (never on the first look)."""
        members = {a.pid for a in self.live_acks()}
        joined = bool(self._members) and bool(members - self._members - {self.pid})
        self._members = members
        return joined

    def _follow_once(self, slot: ModelSlot, on_reload: Callable[[Loaded], None]) -> None:
        """Apply the published target if it is newer than what this worker serves, then acknowledge it."""
        target = _read_json(self.target_path)
        if target is None or int(target["generation"]) <= self.generation:
            return
        with self._lock:
            generation = int(target["generation"])
            if generation <= self.generation:
                return
            try:
                _, loaded = slot.reload(Path(target["artifact"]), files=_files(target))
            except ReloadRefusedError as exc:
                log.error("worker %d keeps %r: %s", self.pid, slot.current.recommender.version, exc)
                self.generation = generation
                self._ack(slot.current.recommender.version, str(exc))
                return
            on_reload(loaded)
            self.generation = generation
            self._ack(loaded.recommender.version)
