"""``benchmarks/serve_load.py`` end to end on a tiny catalog: the JSON contract of ``--json``, and with a learning
exploration stage (``--policy linucb``) the policy state of both workers after an open-loop run with fresh events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "serve_load.py"
TINY = ["--items", "1000", "--users", "300", "--per-user", "10", "--merge-k", "100", "--ranker", "none",
        "--seed-events", "300", "--rates", "40", "--duration", "3", "--warmup", "1", "--fresh-events", "0.5",
        "--workers", "2"]


def serve_load(args: list[str], tmp_path: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the script with ``args`` (its own workdir and results tag under ``tmp_path``), capturing its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=tmp_path)


@pytest.mark.slow  # builds, then starts two worker processes: about a minute on the 2-core box
def test_a_learning_policy_in_the_serve_load_graph_ends_with_identical_worker_states(tmp_path: Path) -> None:
    done = serve_load([*TINY, "--policy", "linucb", "--json", "--tag", f"pytest-{os.getpid()}"], tmp_path)
    results = ROOT / "benchmarks" / "results" / f"serve_load-1000-linucb-w2-open-pytest-{os.getpid()}.json"
    results.unlink(missing_ok=True)  # a test's record is not a benchmark result
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    run = out["runs"][0]
    assert {"offered", "achieved", "p99_ms", "errors", "degraded", "shed"} <= run.keys()
    assert out["policy"] == "linucb" and run["offered"] == 40 and run["achieved"] > 0
    state = run["policy_state"]
    assert len(state["workers"]) == 2 and state["identical"], state
    first, second = state["workers"].values()
    assert first["policy"] == "linucb" and first["digest"] == second["digest"] and first["cursor"] == second["cursor"]
    # the workers learned: the seeded log and the run's fresh clicks were folded (not an untouched prior)
    assert first["events"] > 0 and first["rewards"] > 0
    assert not list((tmp_path / "work").glob("state-*.db*"))  # the run's state is deleted (no --keep-state)


@pytest.mark.parametrize(("args", "message"), [
    (["--policy", "ucb1"], "--policy: invalid choice"),
    (["--policy"], "--policy: expected one argument"),
    (["--max-batch", "0"], "--max-batch: bad value"),
    (["--server-nice", "20"], "--server-nice: bad value"),
    (["--server-nice", "-1"], "--server-nice: bad value"),
])
def test_a_bad_policy_is_refused_naming_the_option(args: list[str], message: str, tmp_path: Path) -> None:
    done = serve_load(args, tmp_path, timeout_s=120)
    assert done.returncode == 2 and message in done.stderr


def test_the_server_gets_max_batch_only_when_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import serve_load as script

    started: list[list[str]] = []

    class Exited:
        def __init__(self, argv: list[str], **_: object) -> None:
            started.append(argv)

        def poll(self) -> int:
            return 1  # exits at once: start_server reports the log and raises

    monkeypatch.setattr(script.subprocess, "Popen", Exited)
    for max_batch in (None, 8):
        with pytest.raises(RuntimeError, match="server exited"):
            script.start_server(tmp_path, tmp_path, 1, workers=2, max_batch=max_batch)
    assert "--max-batch" not in started[0]
    assert started[1][started[1].index("--max-batch") + 1] == "8"


@pytest.mark.parametrize(("argv", "pinned"), [
    ([], False),                                     # one worker: left where the kernel puts it
    (["--workers", "2"], True),                      # several: one core each unless told otherwise
    (["--workers", "2", "--no-pin-workers"], False),
    (["--pin-workers"], True),
])
def test_workers_are_pinned_by_default_only_when_there_are_several(argv: list[str], pinned: bool,
                                                                   tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import serve_load as script

    assert script.parse_args(argv).pin_workers is pinned
    started: list[list[str]] = []

    class Exited:
        def __init__(self, command: list[str], **_: object) -> None:
            started.append(command)

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(script.subprocess, "Popen", Exited)
    with pytest.raises(RuntimeError, match="server exited"):
        script.start_server(tmp_path, tmp_path, 1, workers=2, pin_workers=pinned)
    assert ("--pin-workers" in started[0]) is pinned
    assert "--no-balance-workers" not in started[0]  # the server's default: workers balanced
    with pytest.raises(RuntimeError, match="server exited"):
        script.start_server(tmp_path, tmp_path, 1, workers=2, balance_workers=False)
    assert "--no-balance-workers" in started[1]
    assert script.parse_args(["--no-balance-workers"]).balance_workers is False


def test_reuse_refuses_an_artifact_built_with_other_options(tmp_path: Path) -> None:
    """``--reuse`` serves the artifact in the workdir only when it is what these options build: another pipeline
    (``--ranker``, ``--merge-k`` …) or another synthetic log is refused before anything is served; a config saved
    before a setting was added, with that setting's default, is the same pipeline."""
    import serve_load as script

    args = script.parse_args(TINY)
    config = script.validate_pipeline_config(script.pipeline_config(args)).model_dump(mode="json")
    artifact = tmp_path / "work" / "artifact-1000"
    artifact.mkdir(parents=True)
    (tmp_path / "work" / "build-1000.json").write_text(json.dumps({"items": 1000}))
    log = {"items": 1000, "users": 300, "per_user": 10, "seed": 0, "cover_group": 5}
    older = {**config, "sources": [{k: v for k, v in source.items() if k != "fit"}  # a setting added since
                                   for source in config["sources"]]}
    cases = [({**config, "merge": {**config["merge"], "k": config["merge"]["k"] + 5}}, log,
              "pipeline config differs in merge"),
             (config, {**log, "seed": 1}, "another synthetic log"),
             ({**config, "merge": {"k": -1}}, log, "its pipeline config is not valid today"),
             (older, log, None),
             (config, log, None)]

    def store(have_config: dict[str, object], have_log: dict[str, object]) -> None:
        manifest = {"config": have_config, "data": {"name": "synthetic", "log": have_log}}
        (artifact / "manifest.json").write_text(json.dumps(manifest))

    for have_config, have_log, refusal in cases:
        store(have_config, have_log)
        reason = script.reuse_mismatch(artifact, 1000, args)
        assert (reason is None) if refusal is None else (reason is not None and refusal in reason), reason
    for have_config, have_log, refusal in (cases[0], cases[3]):  # the script itself refuses before serving, or reuses
        store(have_config, have_log)
        done = serve_load([*TINY, "--reuse", "--build-only"], tmp_path)
        if refusal is None:
            assert done.returncode == 0, done.stderr[-2000:]
        else:
            assert done.returncode != 0 and refusal in done.stderr and "drop --reuse" in done.stderr, done.stderr


def test_sigterm_runs_the_cleanup_that_stops_the_server(tmp_path: Path) -> None:
    code = ("import os, signal, sys, time; sys.path.insert(0, 'benchmarks'); import serve_load as s\n"
            "s.exit_on_sigterm()\n"
            "try:\n    os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)\n"
            "finally:\n    print('server stopped', flush=True)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)
    assert done.returncode == 128 + 15 and done.stdout == "server stopped\n", done.stderr[-2000:]


def test_seconds_over_names_the_bad_windows_and_the_worst() -> None:
    import serve_load as script

    fine = [[0, 100, 0, 0, 9.0, 12.0], [1, 100, 0, 0, 11.0, 15.0]]
    assert script.seconds_over(fine, 20.0) == "every second within p99 20 ms"
    bad = [*fine, [2, 90, 10, 0, 30.0, 80.0], [3, 100, 0, 1, 25.0, 40.0]]
    assert script.seconds_over(bad, 20.0) == ("2 of 4 seconds over p99 20 ms or shedding (worst at 2 s: p99 30.0 ms, "
                                              "10 shed)")


def test_cache_figures_take_the_lookups_between_two_readings() -> None:
    import serve_load as script

    before, after = {"hit": 100.0, "miss": 40.0}, {"hit": 160.0, "miss": 80.0}
    assert script.cache_figures(before, after) == {"lookups": 100, "miss_share": 0.4}
    assert script.cache_figures(before, before) == {"lookups": 0, "miss_share": None}
    assert script.cache_figures({}, after) == {} and script.cache_figures(before, {}) == {}  # a reading failed


def test_cache_lookups_are_read_per_cache_from_the_metrics_text() -> None:
    import serve_load as script

    text = ('rankstack_state_cache_lookups_total{result="hit"} 12.0\n'
            'rankstack_state_cache_lookups_total{result="miss"} 3.0\n'
            'rankstack_candidate_cache_lookups_total{result="hit"} 40.0\n'
            'rankstack_candidate_cache_lookups_total{result="miss"} 1.0\n')
    assert script.cache_lookups(text) == {"hit": 12.0, "miss": 3.0}
    assert script.cache_lookups(text, "candidate_cache") == {"hit": 40.0, "miss": 1.0}
    assert script.cache_lookups("", "candidate_cache") == {}


def test_a_nicer_server_really_runs_at_a_lower_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--server-nice`` lowers the priority of the process the server runs in (the workers inherit it)."""
    import serve_load as script

    seen: list[int] = []
    real_popen = subprocess.Popen

    class Exited:
        def __init__(self, argv: list[str], **kwargs: object) -> None:
            code = "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"
            with real_popen([sys.executable, "-c", code], preexec_fn=kwargs.get("preexec_fn"),  # type: ignore[arg-type]
                            stdout=subprocess.PIPE, text=True) as child:
                seen.append(int(child.communicate()[0]))

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(script.subprocess, "Popen", Exited)
    for nice in (0, 5):
        with pytest.raises(RuntimeError, match="server exited"):
            script.start_server(tmp_path, tmp_path, 1, nice=nice)
    assert seen[1] - seen[0] == 5


def test_the_artifact_is_built_in_a_process_of_its_own(tmp_path: Path) -> None:
    """The build runs in a spawned process: the caller gets its facts, the artifact and the popular items on disk,
    and a build that fails there ends the script with an error naming it instead of a half-made artifact used."""
    import serve_load as script

    args = script.parse_args(TINY)
    work = tmp_path / "work"
    work.mkdir()
    facts_file = work / "build-1000.json"
    facts = script.build_in_child(1000, args, work, facts_file)
    assert facts["items"] == 1000 and json.loads(facts_file.read_text()) == facts
    assert (script.artifact_dir(work, 1000, args) / "manifest.json").is_file()
    assert (work / "popular-1000.json").is_file()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the workdir should be")
    with pytest.raises(SystemExit, match="building the 1,000-item artifact failed"):
        script.build_in_child(1000, args, blocked, blocked / "build-1000.json")


def test_the_code_a_run_records_is_the_scripts_own_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``code`` names the commit of the checkout the script lives in, whatever the current directory."""
    import serve_load as script

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    monkeypatch.chdir(tmp_path)  # not a repository
    assert script._git_head().removesuffix("-dirty") == head.stdout.strip()
