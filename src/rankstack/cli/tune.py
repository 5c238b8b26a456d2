"""``rankstack tune SPACE.yaml``: search a model's settings on validation with Ray Tune, test the chosen one once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rankstack.cli.backend_options import AddressOption, BackendKind, WorkersOption, backend_from
from rankstack.cli.common import console, friendly_errors


def tune(
    space: Annotated[Path, typer.Argument(help="The search-space YAML (docs/distributed.md, 'Tuning').")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where trials.csv, chosen.yaml and result.json go.")],
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where datasets live.")] = None,
    workers: WorkersOption = None,
    address: AddressOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Search a model's settings on validation with Ray Tune (ASHA), then test the chosen setting once."""
    from rankstack.distributed.backend import INSTALL_HINT, ray_installed

    if not ray_installed():
        raise typer.BadParameter(f"rankstack tune runs on Ray Tune, which is not installed: {INSTALL_HINT}",
                                 param_hint="SPACE")
    backend = backend_from(BackendKind.ray, workers, address)
    with friendly_errors():
        from rankstack.data.loaders import open_dataset, standard_split
        from rankstack.distributed.search import tune_on_ray
        from rankstack.experiments.tuning import load_tune_spec

        spec = load_tune_spec(space)
        loaded = open_dataset(spec.dataset, data_dir, None)
        choice = standard_split(spec.dataset, loaded.dataset, loaded.info)
        result = tune_on_ray(spec, loaded.dataset, choice.kind, backend, out)
    if json_out:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "trials"}, default=str))
        return
    finished = sum(t["finished"] for t in result["trials"])
    console.print(f"{len(result['trials'])} trials ({finished} finished, the rest stopped by ASHA) on "
                  f"{result['workers']} workers in {result['wall_s']:.0f} s; chosen on validation: "
                  f"{escape(str(result['chosen']))}")
    console.print(f"validation {spec.metric} {result['validation'][spec.metric]:.4f}; "
                  f"test {spec.metric} {result['test'][spec.metric]:.4f} (the test split's only use)")
    console.print(f"→ {out / 'trials.csv'}, {result['chosen_pipeline']} (rankstack train {result['chosen_pipeline']}"
                  f" -o DIR), {out / 'result.json'}")
