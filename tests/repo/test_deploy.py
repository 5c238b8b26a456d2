"""The deployment files (deploy/Dockerfile, compose.yaml, kubernetes.yaml) agree with the code they start: every
command line parses with `rankstack serve`, every copied path exists, every probe is a route of the app, and the
Redis they share keeps acknowledged events (append-only, fsync always). No container runtime is needed: this
machine has none, so these are the checks that can fail here when the CLI or the app changes under the files."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from rankstack.cli.serve import serve
from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from serving_fakes import load_fake, write_fake_artifact  # the service tests' fake artifact

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of the Dockerfile's last ``instruction``."""
    args = [value for name, value in _instructions() if name == instruction][-1]
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"{instruction} should use the exec (JSON list) form, got {args!r}"
    return [str(part) for part in parsed]


def _serve_context(args: list[str]) -> Any:
    """Parse ``rankstack serve ARGS`` exactly as the CLI would, without running it."""
    app = typer.Typer(add_completion=False)
    app.command()(serve)
    return typer.main.get_command(app).make_context("serve", list(args))


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _app_paths(tmp_path: Path) -> set[str]:
    store = SQLiteStateStore(tmp_path / "state.db")
    try:
        app = create_app(load_fake, store, ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1")))
        return {route.path for route in app.routes if hasattr(route, "path")}
    finally:
        store.close()


def test_the_image_copies_paths_that_exist_and_installs_the_package_with_the_lock() -> None:
    copies = [value.split() for name, value in _instructions() if name == "COPY"]
    assert copies, "the Dockerfile copies nothing"
    for parts in copies:
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"deploy/Dockerfile copies {source!r}, which is not in the repository"
    runs = " ".join(value for name, value in _instructions() if name == "RUN")
    assert "-c constraints.txt" in runs and re.search(r"pip install\b.*\s\.(\s|$)", runs), runs


def test_the_image_entrypoint_and_command_parse_as_rankstack_serve() -> None:
    entrypoint, command = _exec_form("ENTRYPOINT"), _exec_form("CMD")
    assert entrypoint == ["rankstack", "serve"]
    params = _serve_context(command).params
    assert str(params["artifact"]) == "/models/current" and params["host"] == "0.0.0.0"
    assert params["state"].startswith("redis://")
    port = params["port"]
    assert any(name == "EXPOSE" and value.split()[0] == str(port) for name, value in _instructions())
    health = next(value for name, value in _instructions() if name == "HEALTHCHECK")
    assert f"127.0.0.1:{port}/readyz" in health


def test_compose_runs_the_image_against_its_own_durable_redis() -> None:
    (compose,) = _documents("compose.yaml")
    service, redis = compose["services"]["rankstack"], compose["services"]["redis"]
    build = service["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    params = _serve_context(service["command"]).params
    assert params["state"] == "redis://redis:6379/0"  # the compose service name
    assert any(str(mapping).endswith(f":{params['port']}") for mapping in service["ports"])
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    flags = " ".join(redis["command"])
    assert "--appendonly yes" in flags and "--appendfsync always" in flags


def test_the_kubernetes_example_probes_routes_the_app_has(tmp_path: Path) -> None:
    docs = _documents("kubernetes.yaml")
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    params = _serve_context(container["args"]).params
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == params["port"]
    paths = _app_paths(tmp_path)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths, probe
    redis = next(doc for doc in docs if doc["kind"] == "StatefulSet")
    flags = " ".join(redis["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in flags and "--appendfsync always" in flags
    service_names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Service"}
    host = params["state"].removeprefix("redis://").split(":")[0]
    assert host in service_names, f"--state names {host!r}, which is not a Service of the manifest"


@pytest.mark.parametrize("args", [["/models/current", "--port", "not-a-port"], ["/models/current", "--workers", "0"],
                                  ["/models/current", "--no-such-flag"]])
def test_the_parser_used_above_does_refuse_bad_command_lines(args: list[str]) -> None:
    with pytest.raises(Exception) as refused:  # typer vendors click privately; a usage error exits 2
        _serve_context(args)
    assert getattr(refused.value, "exit_code", None) == 2, refused.value
