"""``rankstack train [PIPELINE.yaml] -o ARTIFACT``: train every stage, evaluate offline, write and register it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rankstack.cli.backend_options import (
    AddressOption,
    BackendKind,
    BackendOption,
    WorkersOption,
    backend_from,
    lambdarank_fit_for,
    multitask_fit_for,
    ray_stages,
    session_for,
    source_fit_for,
)
from rankstack.cli.common import artifact_size, console, err_console, friendly_errors, metric_grid
from rankstack.errors import RegistryError

if TYPE_CHECKING:
    from rankstack.experiments.pipeline_training import TrainResult


def summary(result: TrainResult) -> dict[str, Any]:
    """Version, per-source and final-slate metrics, funnel recall and timings (the ``--json`` output)."""
    m = result.manifest
    return {"version": m["version"], "name": m["name"], "stages": m["stages"], "data": m["data"],
            "metrics": m["metrics"], "timings": m["timings"]}


def train(
    config: Annotated[Path | None, typer.Argument(help="Pipeline YAML (default: the built-in default).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Artifact directory to write.")] = Path("artifacts/default"),
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where to look for named datasets.")] = None,
    registry: Annotated[Path | None, typer.Option("--registry", help="Registry folder (default ~/.rankstack/registry "
                                                  "or $RANKSTACK_REGISTRY).")] = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="Add it to the registry.")] = True,
    promote: Annotated[bool, typer.Option("--promote", help="Make the new version the active one.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing artifact directory.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    backend_kind: BackendOption = BackendKind.local,
    workers: WorkersOption = None,
    address: AddressOption = None,
) -> None:
    """Train the pipeline's stages in order, evaluate them offline, write a versioned artifact and register it."""
    started = time.perf_counter()
    backend = backend_from(backend_kind, workers, address)
    with friendly_errors():
        from rankstack.experiments.pipeline_training import train_pipeline
        from rankstack.experiments.versions import VersionRegistry
        from rankstack.pipeline.artifact import save_artifact
        from rankstack.pipeline.config import load_pipeline_config

        cfg = load_pipeline_config(config)
        if backend.is_ray and not ray_stages(cfg):
            raise typer.BadParameter("ray: nothing in this pipeline trains on Ray (SASRec and two-tower sources, the "
                                     "multi-task and LambdaRank rankers do); use --backend local",
                                     param_hint="--backend")
        if out.exists() and any(out.iterdir()) and not force:
            raise typer.BadParameter(f"{out} exists and is not empty (use --force to replace it)", param_hint="--out")
        def log(msg: str) -> None:
            """A training note: on stderr under ``--json``, whose stdout is the record alone."""
            (err_console if as_json else console).print(escape(msg))

        with session_for(backend):
            if backend.is_ray:
                log(f"on Ray ({backend.workers or 'all'} workers): {', '.join(ray_stages(cfg))}; the rest here")
            fit_sources = source_fit_for(backend, log)
            result = train_pipeline(cfg, data_dir=data_dir, log=log, lambdarank_fit=lambdarank_fit_for(backend),
                                    multitask_fit=multitask_fit_for(backend),
                                    **({} if fit_sources is None else {"source_fit": fit_sources}))
        save_artifact(result.pipeline.parts, result.manifest, out, overwrite=force)
        result.pipeline.close()
        registered: dict[str, Any] | None = None
        if register:
            reg = VersionRegistry(registry)
            try:
                entry = reg.register(out)
                if promote:
                    reg.promote(entry.version)
                registered = {"registry": str(reg.root), "active": reg.read().active == entry.version}
            except RegistryError as exc:
                registered = {"registry": str(reg.root), "error": str(exc)}
    record = {**summary(result), "artifact": str(out.resolve()), "registered": registered,
              "wall_s": round(time.perf_counter() - started, 2)}
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    metrics = result.manifest["metrics"]
    for name, values in metrics["sources"].items():
        console.print(metric_grid(f"source {name} (full ranking)", values))
    console.print(metric_grid(f"pipeline {cfg.name}: final slate via recommend()", metrics["pipeline"]))
    console.print(f"\nArtifact [bold]{escape(str(out))}[/] version [bold]{record['version']}[/] "
                  f"({record['wall_s']:.1f} s): {escape(artifact_size(out))}")
    if registered is not None:
        state = str(registered.get("error") or ("active" if registered["active"] else "registered (not active)"))
        console.print(f"Registry {escape(registered['registry'])}: {escape(state)}")
    console.print(f"Next: [bold]rankstack serve {escape(str(out))}[/]")
