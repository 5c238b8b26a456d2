"""The CLI starts fast: importing it, ``--help`` and usage errors import none of the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import get_args

import pytest
from typer.testing import CliRunner

from rankstack.cli import COMMANDS, app

HEAVY = ("torch", "matplotlib", "fastapi", "faiss", "polars", "scipy", "uvicorn", "ray")
runner = CliRunner()


def _heavy_modules_after(code: str) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it imported, and its stderr."""
    probe = (f"import json, sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _heavy_modules_after("import rankstack.cli") == ([], "")


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["evaluate", "--help"],
    ["evaluate", "--dataset", "ml-latest-small", "--model", "popular", "--split", "bogus"],
    ["train", "--help"],
    ["quickstart", "--bogus-option"],
    ["check-rules", "--help"],
    ["models", "list", "--bogus-option"],
])
def test_help_and_usage_errors_import_no_heavy_library(argv: list[str]) -> None:
    heavy, _ = _heavy_modules_after(f"from rankstack.cli import app; app({argv!r}, prog_name='rankstack')")
    assert heavy == []


def test_root_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_help_works_and_matches_the_listing(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: rankstack" in result.output
    real = COMMANDS[name].load(name)
    assert (real.help or "").strip().splitlines()[0] == COMMANDS[name].help


def test_evaluate_choices_match_the_registries() -> None:
    from rankstack.cli.evaluate import MODELS, SplitKind
    from rankstack.data.splits import SplitKind as SplitKinds
    from rankstack.pipeline.components import names

    assert set(MODELS) == {*names("source"), "multitask"}
    assert {s.value for s in SplitKind} == set(get_args(SplitKinds))
