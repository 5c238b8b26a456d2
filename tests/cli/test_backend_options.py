"""``--backend`` / ``--workers`` / ``--address``: every bad combination is a one-line usage error (exit 2), before
any data is read or Ray is started."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.cli.backend_options import ray_stages
from rankstack.distributed import backend as backend_module
from rankstack.pipeline.config import load_pipeline_config

runner = CliRunner()


def said(output: str) -> str:
    """The output as one line of words, without Rich's box drawing (a long message wraps inside the box)."""
    return " ".join(output.replace("│", " ").split())
EVALUATE = ["evaluate", "--dataset", "ml-latest-small", "--model", "popular"]
PIPELINES = Path(__file__).resolve().parents[2] / "configs" / "pipelines"
NEURAL = str(PIPELINES / "neural-100k.yaml")


@pytest.mark.parametrize(("extra", "message"), [
    (["--workers", "2"], "counts Ray workers, so it needs --backend ray"),
    (["--address", "ray://head:10001"], "names a Ray cluster, so it needs --backend ray"),
    (["--backend", "ray", "--workers", "0"], "must be an integer >= 1"),
    (["--backend", "spark"], "'spark' is not one of"),
])
def test_bad_backend_options_are_usage_errors(extra: list[str], message: str) -> None:
    result = runner.invoke(app, [*EVALUATE, *extra])
    assert result.exit_code == 2
    assert message in said(result.output)


@pytest.mark.parametrize("argv", [
    [*EVALUATE, "--backend", "ray"],
    ["data", "prepare", "log.csv", "--out", "x", "--backend", "ray"],
    ["tune", "space.yaml", "--out", "x"],
])
def test_ray_backends_without_ray_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setattr(backend_module, "ray_installed", lambda: False)
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "pip install 'rankstack[ray]'" in said(result.output)


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "--dataset", "ml-latest-small", "--model", "multitask", "--backend", "ray"],
     "the multitask ranker is evaluated in this process only"),
    (["evaluate", "--dataset", "ml-latest-small", "--model", "ease", "--set", "l2=100,200", "--eval-on",
      "validation", "--backend", "ray"], "EASE's λ path (several l2) runs in this process only"),
    (["train", NEURAL, "-o", "unused", "--backend", "ray"], "nothing in this pipeline trains on Ray"),
    (["train", "-o", "unused", "--workers", "2"], "counts Ray workers, so it needs --backend ray"),
])
def test_parts_not_sharded_yet_say_so(argv: list[str], message: str) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in said(result.output)


@pytest.mark.parametrize(("name", "stages"), [
    ("simulator", ["ranker multitask"]),
    ("full", ["source two-tower", "ranker sasrec"]),
    ("ltr-ml1m", ["ranker lambdarank"]),
    ("ltr-ml1m-sasrec", ["ranker lambdarank"]),  # its SASRec is fitted once, in process
    ("ltr-ml1m-sasrec-continued", ["ranker lambdarank"]),  # fitted once and continued, both in process
    ("neural-100k", []),
])
def test_train_names_the_stages_that_train_on_ray(name: str, stages: list[str]) -> None:
    assert ray_stages(load_pipeline_config(PIPELINES / f"{name}.yaml")) == stages
