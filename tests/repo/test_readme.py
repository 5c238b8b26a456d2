"""The README stays true: its layout lists every package, its walk-through runs as written, its forms exist."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rankstack.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PACKAGES = ROOT / "src" / "rankstack"

# ``rankstack ARGS`` in a fresh interpreter: the console script's entry point
RANKSTACK = "import sys; from rankstack.cli import app; sys.argv[0] = 'rankstack'; app()"

# The walk-through as written, made small enough for CI: same commands and options, smaller sizes.
SMALLER = {
    "--set epochs=5": "--set epochs=1",
    "--users 2000 --items 500 --impressions 200000": "--users 300 --items 60 --impressions 20000",
}


def bash_blocks(after_heading: str) -> list[list[str]]:
    """The fenced bash blocks of one README section, each as its command lines (comments stripped)."""
    section = README.split(f"## {after_heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [[line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()] for block in blocks]


def layout_packages() -> set[str]:
    """Package folders named in the README's Layout block."""
    block = README.split("## Layout\n", 1)[1].split("```", 2)[1]
    return set(re.findall(r"^  (\w+)/", block, flags=re.M))


def test_layout_lists_every_package_and_nothing_else() -> None:
    on_disk = {p.name for p in PACKAGES.iterdir() if (p / "__init__.py").is_file()}
    assert layout_packages() == on_disk


def test_every_form_names_a_command_and_options_that_exist() -> None:
    walk, forms = bash_blocks("Command line")
    for line in walk + forms:
        words = shlex.split(line)
        assert words[0] == "rankstack", line
        command = [w for w in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        shown = run_cli([*command, "--help"], ROOT, timeout=60)
        assert shown.returncode == 0, (line, shown.stderr)
        for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
            assert option in shown.stdout, f"{line!r}: {option} is not in `rankstack {' '.join(command)} --help`"


def run_cli(args: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """``rankstack ARGS`` in a fresh interpreter (the console script's entry point), wide help output."""
    full_env = {**os.environ, "COLUMNS": "200", "TERM": "dumb", **(env or {})}
    return subprocess.run([sys.executable, "-c", RANKSTACK, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


def serve_until_ready(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Start ``rankstack serve`` as written, wait for /readyz, ask for one slate, then stop it with Ctrl-C."""
    proc = subprocess.Popen([sys.executable, "-c", RANKSTACK, *args], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = args[args.index("--port") + 1]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        body = {"user_id": "1", "k": 5}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/recommend", json=body, timeout=10)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5, answer.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_walk_through_runs_as_written_in_order(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copytree(ROOT / "configs", clone / "configs")
    env = {"RANKSTACK_REGISTRY": str(tmp_path / "registry"), "RANKSTACK_DATA": str(tmp_path / "no-data")}
    walk = bash_blocks("Command line")[0]
    assert any("simulate" in line for line in walk) and any("serve" in line for line in walk)
    for line in walk:
        for big, small in SMALLER.items():
            line = line.replace(big, small)
        args = shlex.split(line)[1:]
        if args[0] == "serve":
            port = str(free_port())
            serve_until_ready([*args[:args.index("--port") + 1], port, *args[args.index("--port") + 2:]], clone, env)
            continue
        done = run_cli(args, clone, timeout=600, env=env)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("ignored", ["data/sim/events.parquet", "state.db", "state.db-wal", "artifacts/x/a.json"])
def test_what_the_walk_through_writes_is_ignored_by_git(ignored: str) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", ignored], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{ignored} would show up in git status"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (tests/conftest.py has one too, but a root conftest is not
    importable by name while other folders have conftest modules of their own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def own_data_files(folder: Path) -> None:
    """Tiny files under the names the "Your own data" commands use, in the shapes they describe."""
    rng = np.random.default_rng(0)
    users = {f"u{u}": [f"i{i}" for i in rng.choice(25, size=6, replace=False)] for u in range(30)}
    events = [(user, item, n) for user, items in users.items() for n, item in enumerate(items)]
    (folder / "ratings.txt").write_text("".join(f"{u}\t{i}\t{1 + n % 5}\t{1_700_000_000 + 60 * n}\n"
                                                for u, i, n in events))
    (folder / "clicks.txt").write_text("".join(f"{u} {i}\n" for u, i, _ in events))
    (folder / "train.txt").write_text("".join(f"{u} {' '.join(items[:-1])}\n" for u, items in users.items()))
    (folder / "test.txt").write_text("".join(f"{u} {items[-1]}\n" for u, items in users.items()))
    parts = {4: "validation", 5: "test"}
    (folder / "log.csv").write_text("user_id,item_id,split\n" + "".join(
        f"{u},{i},{parts.get(n, 'train')}\n" for u, i, n in events))
    (folder / "export.csv").write_text("customer,sku,ts\n" + "".join(
        f"{u},{i},{1_700_000_000 + 60 * n}\n" for u, i, n in [*events, events[0]]))  # one repeated row


def test_the_own_data_section_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command of "Your own data" on tiny files of the names it uses (in-process: the walk-through above
    already runs the console script's entry point)."""
    own_data_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"COLUMNS": "200", "RANKSTACK_QUIET": "1"})
    (commands,) = bash_blocks("Your own data")
    assert any("--format pairs" in line for line in commands) and any("--test-file" in line for line in commands)
    outputs = []
    for line in commands:
        args = shlex.split(line)
        assert args[0] == "rankstack", line
        done = runner.invoke(app, args[1:])
        assert done.exit_code == 0, f"{line}\n{done.output[-3000:]}"
        outputs.append(" ".join(done.output.split()))
    assert "split: leave_one_out (every event has a timestamp" in outputs[0]
    assert "recall" in outputs[1] and "split predefined (separate train/test files were given)" in outputs[3]
    assert '"split": "predefined"' in outputs[4]


def test_the_own_data_yaml_is_a_valid_data_section() -> None:
    from rankstack.pipeline.config import DataConfig

    section = README.split("## Your own data\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    data = DataConfig.model_validate(yaml.safe_load(block)["data"])
    assert (data.format, data.test_file) == ("sequences", "test.txt")
