"""The reload protocol between workers, in one process: publish, follow, acknowledge, and report stragglers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from serving_fakes import load_fake, write_fake_artifact

from rankstack.serving.fanout import ReloadGroup, pid_alive
from rankstack.serving.model_slot import Loaded, ModelSlot, ReloadRefusedError


def slot(tmp_path: Path, version: str = "v1") -> ModelSlot:
    """A slot serving a fake artifact."""
    return ModelSlot(load_fake, write_fake_artifact(tmp_path / version, version), "warmup")


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_pid_alive() -> None:
    assert pid_alive(os.getpid()) and not pid_alive(dead_pid())


def test_a_reload_is_published_and_acknowledged(tmp_path: Path) -> None:
    group, here = ReloadGroup(tmp_path), slot(tmp_path)
    group.start(here, on_reload=lambda loaded: None)
    try:
        previous, loaded, generation = group.reload(here, write_fake_artifact(tmp_path / "v2", "v2"))
        assert (previous.recommender.version, loaded.recommender.version, generation) == ("v1", "v2", 1)
        assert json.loads((tmp_path / "target.json").read_text()) == {"generation": 1, "artifact": str(tmp_path / "v2")}
        outcome = group.wait(generation)
        assert (outcome.workers, outcome.switched, outcome.problems) == (1, 1, [])
    finally:
        group.stop()
    assert not list(tmp_path.glob("ack-*.json"))  # a stopped worker no longer counts


def test_a_refused_reload_publishes_nothing(tmp_path: Path) -> None:
    group, here = ReloadGroup(tmp_path), slot(tmp_path)
    with pytest.raises(ReloadRefusedError):
        group.reload(here, tmp_path / "missing")
    assert not (tmp_path / "target.json").exists() and here.current.recommender.version == "v1"


def test_a_follower_switches_and_a_late_starter_serves_the_published_artifact(tmp_path: Path) -> None:
    leader, follower = ReloadGroup(tmp_path), ReloadGroup(tmp_path, poll_s=0.02)
    follower.pid = os.getppid()  # stands for another live worker process
    followed: list[Loaded] = []
    follower_slot = slot(tmp_path)
    follower.start(follower_slot, on_reload=followed.append)
    try:
        _, _, generation = leader.reload(slot(tmp_path), write_fake_artifact(tmp_path / "v2", "v2"))
        outcome = leader.wait(generation)
        assert (outcome.workers, outcome.switched, outcome.problems) == (2, 2, [])
        assert follower_slot.current.recommender.version == "v2" and len(followed) == 1
    finally:
        follower.stop()
    late = ReloadGroup(tmp_path)
    assert late.open_slot(load_fake, tmp_path / "v1", "warmup").current.recommender.version == "v2"
    assert late.generation == generation


def test_a_late_starter_loads_the_published_snapshot_when_the_artifact_is_gone(tmp_path: Path) -> None:
    control, snapshots = tmp_path / "control", tmp_path / "snapshots"
    control.mkdir()
    leader = ReloadGroup(control, snapshots=snapshots)
    first = write_fake_artifact(tmp_path / "v2", "v2")
    _, loaded, generation = leader.reload(slot(tmp_path), first)
    target = json.loads((control / "target.json").read_text())
    assert loaded.artifact == first and target["artifact"] == str(first)
    assert loaded.files is not None and target["files"] == str(loaded.files) and loaded.files.parent == snapshots
    shutil.rmtree(first)  # the operator's folder is gone (or rewritten): the copy still loads
    late = ReloadGroup(control, snapshots=snapshots)
    replacement = late.open_slot(load_fake, tmp_path / "v1", "warmup")
    assert replacement.current.recommender.version == "v2" and late.generation == generation
    _, again, _ = leader.reload(replacement, write_fake_artifact(tmp_path / "v3", "v3"))
    assert [p.name for p in snapshots.iterdir()] == [again.files.name]  # type: ignore[union-attr]
    shutil.rmtree(again.files)  # type: ignore[arg-type]
    with pytest.raises(ReloadRefusedError, match="v3 refused"):  # never another version than the others serve
        ReloadGroup(control, snapshots=snapshots).open_slot(load_fake, tmp_path / "v1", "warmup")


def test_a_refused_reload_leaves_no_snapshot(tmp_path: Path) -> None:
    group = ReloadGroup(tmp_path, snapshots=tmp_path / "snapshots")
    corrupt = write_fake_artifact(tmp_path / "bad", "bad")
    (corrupt / "manifest.json").write_text("{not json")
    with pytest.raises(ReloadRefusedError, match=f"artifact {corrupt} refused: FakeArtifactError: {corrupt}:"):
        group.reload(slot(tmp_path), corrupt)  # the message names the operator's folder, not the private copy
    with pytest.raises(ReloadRefusedError, match="not a folder"):
        group.reload(slot(tmp_path), tmp_path / "missing")
    assert list((tmp_path / "snapshots").iterdir()) == [] and not (tmp_path / "target.json").exists()


def test_silent_workers_are_reported_and_dead_ones_ignored(tmp_path: Path) -> None:
    for pid in (dead_pid(), os.getppid()):  # one crashed worker, one live worker that never follows
        (tmp_path / f"ack-{pid}.json").write_text(json.dumps({"pid": pid, "generation": 0, "version": "v1"}))
    group = ReloadGroup(tmp_path, wait_s=0.2)
    _, _, generation = group.reload(slot(tmp_path), write_fake_artifact(tmp_path / "v2", "v2"))
    outcome = group.wait(generation)
    assert (outcome.workers, outcome.switched) == (2, 1)
    assert outcome.problems == [f"worker {os.getppid()} did not answer within 0.2 s (serves 'v1')"]


def test_a_joining_worker_is_noticed_and_each_connection_is_closed_once(tmp_path: Path) -> None:
    from rankstack.serving.rebalance import Rebalance

    group = ReloadGroup(tmp_path)
    group._ack("v1")
    assert not group._joined()  # the first look only learns who serves
    other = os.getppid()  # stands for a replacement worker that just started serving
    (tmp_path / f"ack-{other}.json").write_text(json.dumps({"pid": other, "generation": 0, "version": "v1"}))
    assert group._joined() and not group._joined()
    rebalance = Rebalance(window_s=60)
    assert not any(rebalance.should_close(("127.0.0.1", port)) for port in (5000, 5001))  # nothing joined yet
    rebalance.trigger()
    answers = [rebalance.should_close(("127.0.0.1", port)) for port in (5002, 5000, 5001, 5000, 5002)]
    assert answers == [False, True, True, False, False]  # open before the join: closed once; opened after: kept


def test_the_load_board_holds_the_live_fresh_rates_of_the_other_workers(tmp_path: Path) -> None:
    group = ReloadGroup(tmp_path)
    group.publish_load(120.0)
    other, gone = os.getppid(), dead_pid()
    for pid, rate in ((other, 80.0), (gone, 500.0)):
        (tmp_path / f"load-{pid}.json").write_text(json.dumps({"pid": pid, "rate": rate}))
    (tmp_path / "load-junk.json").write_text("{not json")
    assert group.peer_loads(max_age_s=60) == [80.0]  # not its own, not a dead worker's, not junk
    os.utime(tmp_path / f"load-{other}.json", (1.0, 1.0))
    assert group.peer_loads(max_age_s=60) == []  # stale: the worker stopped publishing
    group.stop()
    assert not (tmp_path / f"load-{group.pid}.json").exists()


def _serve(rebalance: object, connections: range, rounds: int) -> list[int]:
    """``rounds`` requests on each of ``connections`` (ports) in turn: the ports whose answer closed them."""
    from rankstack.serving.rebalance import Rebalance

    assert isinstance(rebalance, Rebalance)
    return [port for _ in range(rounds) for port in connections if rebalance.should_close(("127.0.0.1", port))]


@pytest.mark.parametrize(("own", "others", "closes"), [
    (600.0, [400.0], 1),  # 10 connections of 60 req/s each, the mean 500: one of them (not two: overshoot)
    (1000.0, [0.0], 5),  # all the load here: half of it moves
    (540.0, [460.0], 0),  # within 10% of the mean
    (40.0, [0.0], 0),  # too little load to bother
    (600.0, [], 0),  # no other worker
    (600.0, [200.0, 200.0, 200.0], 5),  # the mean of four workers is 300
])
def test_a_worker_over_its_share_closes_the_connections_that_carry_the_excess(own: float, others: list[float],
                                                                              closes: int) -> None:
    from rankstack.serving.rebalance import Rebalance

    rebalance = Rebalance()
    assert _serve(rebalance, range(6000, 6010), 3) == []  # ten connections, nothing asked yet
    assert rebalance.balance(own, others) == closes
    assert _serve(rebalance, range(7000, 7003), 1) == []  # connections opened since (reopened) are left alone
    closed = _serve(rebalance, range(6000, 6010), 3)
    assert len(closed) == len(set(closed)) == closes == rebalance.balance_closes  # each connection once
    assert rebalance.balance(500.0, [500.0]) == 0  # balanced now: nothing more is closed
    assert _serve(rebalance, range(6000, 6010), 2) == []


def test_the_request_rate_is_counted_between_looks() -> None:
    from rankstack.serving.rebalance import Rebalance

    rebalance = Rebalance()
    assert rebalance.rate(100.0) is None
    _serve(rebalance, range(6000, 6005), 4)
    assert rebalance.rate(102.0) == pytest.approx(10.0)
    assert rebalance.rate(103.0) == 0.0
