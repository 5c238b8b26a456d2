"""Bad option values give a one-line error and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rankstack.cli import app

runner = CliRunner(env={"COLUMNS": "300"})  # wide enough that Rich wraps no message


def _flat(text: str) -> str:
    """The output without Rich's box drawing, whitespace collapsed."""
    return " ".join(text.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
EVAL = ["evaluate", "--dataset", "ml-latest-small"]

CASES: list[tuple[str, list[str], str]] = [
    ("unknown split", [*EVAL, "--model", "popular", "--split", "bogus"],
     "'bogus' is not one of 'leave_one_out', 'temporal', 'random', 'predefined'"),
    ("unknown model", [*EVAL, "--model", "bogus"], "'bogus' is not one of 'popular'"),
    ("unknown setting", [*EVAL, "--model", "ease", "--set", "l3=1"],
     "unknown setting 'l3' (known: l2, device, max_memory_gb)"),
    ("setting of the wrong type", [*EVAL, "--model", "ease", "--set", "l2=abc"],
     "invalid settings for model 'ease': l2"),
    ("setting out of range", [*EVAL, "--model", "ease", "--set", "l2=-3"], "l2: Input should be greater than 0"),
    ("setting without a value", [*EVAL, "--model", "ease", "--set", "l2"], "expected key=value"),
    ("λ list with a non-number", [*EVAL, "--model", "ease", "--eval-on", "validation", "--set", "l2=100,abc"],
     "l2: expected numbers > 0 separated by commas, got '100,abc'"),
    ("λ list with a repeat", [*EVAL, "--model", "ease", "--eval-on", "validation", "--set", "l2=100,100"],
     "l2: λ=100 is listed twice"),
    ("λ list chosen on test", [*EVAL, "--model", "ease", "--set", "l2=100,200"],
     "lists several λ, which are compared on validation: add --eval-on validation"),
    ("λ list with a bad other setting", [*EVAL, "--model", "ease", "--eval-on", "validation", "--set", "l2=1,2",
                                         "--set", "max_memory_gb=-1"], "max_memory_gb: Input should be greater than 0"),
    ("missing dataset", ["evaluate", "--dataset", "no-such-data", "--model", "popular"],
     "unknown dataset 'no-such-data'"),
    ("k of zero", [*EVAL, "--model", "popular", "--k", "0"], "each k must be an integer >= 1"),
    ("k not a number", [*EVAL, "--model", "popular", "--k", "ten"], "each k must be an integer >= 1"),
    ("unknown eval-on", [*EVAL, "--model", "popular", "--eval-on", "train"], "'train' is not one of 'test'"),
    ("unknown device", [*EVAL, "--model", "popular", "--device", "gpu0"], "unknown device 'gpu0'"),
    ("multitask with a split it cannot use", [*EVAL, "--model", "multitask", "--split", "random"],
     "temporal split"),
    ("missing recs files", ["evaluate-recs", "--train", "no.csv", "--test", "no.csv", "--recs", "no.csv"],
     "file not found"),
    ("missing pipeline file", ["train", "no-such.yaml", "-o", "{tmp}/a"], "cannot read pipeline config"),
    ("unknown simulator policy", ["simulate", "--out", "{tmp}/sim", "--policy", "bogus"], "policy.kind"),
    ("unknown version", ["models", "promote", "nope", "--registry", "{tmp}/reg"], "unknown version 'nope'"),
    ("unknown dataset to download", ["data", "download", "no-such-data", "--dest", "{tmp}"],
     "unknown dataset 'no-such-data'"),
    ("negative example-user count", ["quickstart", "--users", "-1"],
     "--users': Input should be greater than or equal to 0"),
    ("missing artifact", ["serve", "{tmp}/none", "--state", "sqlite:{tmp}/state.db"], "manifest.json: missing"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_usage_error(tmp_path: Path, argv: list[str], message: str) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert message in _flat(result.output), result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_a_clear_error() -> None:
    result = runner.invoke(app, [*EVAL, "--model", "popular", "--device", "cuda"])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output


def test_evaluate_help_lists_the_split_kinds_and_models() -> None:
    text = runner.invoke(app, ["evaluate", "--help"]).output
    flat = _flat(text)
    assert "leave_one_out|temporal|random|predefined" in flat
    assert "popular|itemknn|ease|als|lightgcn|two-tower|sasrec|multitask" in flat
