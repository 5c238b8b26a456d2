"""``--pin-workers``: which core each worker place gets, and pinning every thread of a process (in a child
process, so the test process keeps its cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rankstack.errors import ConfigError
from rankstack.serving import affinity
from rankstack.serving.affinity import seat_core, usable_cores

CAN_PIN = hasattr(os, "sched_setaffinity")


@pytest.mark.parametrize(("seat", "cores", "expected"), [
    (0, [0, 1], 0),
    (1, [0, 1], 1),
    (2, [0, 1], 0),   # more workers than cores: round robin
    (3, [2, 5, 7], 2),
    (1, [4], 4),      # one core: every worker on it
])
def test_seats_take_the_cores_in_turn(seat: int, cores: list[int], expected: int) -> None:
    assert seat_core(seat, cores) == expected


def test_no_cores_is_an_error() -> None:
    with pytest.raises(ValueError, match="no cores"):
        seat_core(0, [])


def test_a_platform_without_affinity_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(affinity.os, "sched_setaffinity", raising=False)
    with pytest.raises(ConfigError, match="--pin-workers needs CPU affinity"):
        usable_cores()


CHILD = """
import json, logging, os, sys, threading
from rankstack.serving.affinity import pin_process
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()   # a thread that exists when the process is pinned
pin_process(int(sys.argv[1]))
after = threading.Thread(target=stop.wait); after.start()     # one started later inherits it
tids = [int(t) for t in os.listdir("/proc/self/task")]
print(json.dumps(sorted({t: sorted(os.sched_getaffinity(t)) for t in tids}.values())))
stop.set()
"""


def run_child(core: int) -> tuple[list[list[int]], str]:
    """Pin a child process with two extra threads to ``core``: each thread's cores, and its log."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(core)], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout), done.stderr


@pytest.mark.skipif(not CAN_PIN, reason="this platform has no CPU affinity")
def test_every_thread_of_the_process_runs_on_the_core() -> None:
    core = max(usable_cores())
    threads, log = run_child(core)
    assert len(threads) == 3 and all(cores == [core] for cores in threads)
    assert f"runs on core {core}" in log


@pytest.mark.skipif(not CAN_PIN, reason="this platform has no CPU affinity")
def test_a_core_it_may_not_use_is_logged_and_the_process_left_where_it_was() -> None:
    allowed = usable_cores()
    threads, log = run_child(max(allowed) + 4096)
    assert all(cores == allowed for cores in threads)
    assert "could not be pinned" in log
