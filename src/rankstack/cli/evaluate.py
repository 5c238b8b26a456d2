"""``rankstack evaluate``: train a model on a dataset's standard split and report full-ranking metrics."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.backend_options import (
    AddressOption,
    BackendKind,
    BackendOption,
    WorkersOption,
    backend_from,
    evaluation_for,
)
from rankstack.cli.common import (
    console,
    err_console,
    friendly_errors,
    metric_grid,
    parse_ks,
    parse_settings,
    print_training,
)
from rankstack.cli.log_options import (
    ColumnsOption,
    Duplicates,
    DuplicatesOption,
    FormatOption,
    IgnoreOption,
    LogFormat,
    OrderOption,
    SplitKind,
    TestFileOption,
    TimeUnitOption,
    ValidationFileOption,
    read_options,
)
from rankstack.pipeline.components import names

MULTITASK = "multitask"
# ``--model``: a candidate source of the component registry (its names only: no model module is imported), or
# the multi-task ranker
MODELS = (*names("source"), MULTITASK)
if TYPE_CHECKING:
    from rankstack.data.loaders.read_options import ReadOptions

    Model = str
else:
    Model = StrEnum("Model", {name.replace("-", "_"): name for name in MODELS})


class EvalTarget(StrEnum):
    """``--eval-on``: which held-out part is scored."""

    test = "test"
    validation = "validation"


def metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """A Rich table: one row per model, one column per metric."""
    metrics = list(next(iter(rows.values())))
    table = Table(title=title, title_justify="left")
    table.add_column("model", style="bold")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for model, values in rows.items():
        table.add_row(model, *(f"{values[m]:.4f}" for m in metrics))
    return table


def _evaluate_l2_grid(dataset: str, l2s: list[float], params: dict[str, Any], split: SplitKind | None,
                      target: str, ks: list[int], device: str | None, data_dir: Path | None, runs_dir: Path,
                      json_out: bool, options: ReadOptions) -> None:
    """EASE along several λ on validation (choosing λ on test would be tuning on it: refused)."""
    if target != "validation":
        listed = ",".join(f"{v:g}" for v in l2s)
        raise typer.BadParameter(
            f"l2={listed} lists several λ, which are compared on validation: add --eval-on validation, then "
            "evaluate the chosen λ on test once with --set l2=<best>", param_hint="--set")
    with friendly_errors():
        from rankstack.cli.evaluate_lambda_path import evaluate_lambda_path
        from rankstack.device import resolve_device
        from rankstack.pipeline.components import settings as validated

        validated("source", "ease", {**params, "l2": l2s[0]})  # the other settings fail before the data loads
        if device is not None:
            resolve_device(device)
        evaluate_lambda_path(dataset, l2s=l2s, params={k: v for k, v in params.items() if k != "l2"},
                             split=None if split is None else split.value, ks=ks, device=device,
                             data_dir=data_dir, runs_dir=runs_dir, json_out=json_out, options=options)


def evaluate(
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Dataset name (see `rankstack data list`) or your own log: a file or folder.")],
    model: Annotated[Model, typer.Option("--model", help="A candidate source, or the multi-task ranker.")],
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Model setting key=value (repeatable), e.g. --set l2=80.")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    split: Annotated[
        SplitKind | None, typer.Option("--split", help="Split kind (default: the dataset's standard split).")
    ] = None,
    eval_on: Annotated[
        EvalTarget, typer.Option("--eval-on", help="test (fit on train+validation) or validation (tune here).")
    ] = EvalTarget.test,
    device: Annotated[str | None, typer.Option("--device", help="cpu | cuda | cuda:N (default: auto).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where datasets live.")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where runs/<id>/result.json goes.")] = Path("runs"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    fmt: FormatOption = LogFormat.auto,
    columns: ColumnsOption = None,
    order: OrderOption = None,
    time_unit: TimeUnitOption = None,
    duplicates: DuplicatesOption = Duplicates.drop,
    ignore: IgnoreOption = None,
    validation_file: ValidationFileOption = None,
    test_file: TestFileOption = None,
    backend_kind: BackendOption = BackendKind.local,
    workers: WorkersOption = None,
    address: AddressOption = None,
) -> None:
    """Train MODEL on DATASET's standard split, evaluate with exact full ranking, save runs/<id>/result.json."""
    options = read_options(fmt, columns, order, time_unit, duplicates, ignore, validation_file, test_file)
    backend = backend_from(backend_kind, workers, address)
    ks = parse_ks(k)
    params = parse_settings(settings)
    target: Literal["test", "validation"] = "test" if eval_on is EvalTarget.test else "validation"
    if backend.is_ray and model == MULTITASK:
        raise typer.BadParameter("ray: the multitask ranker is evaluated in this process only (--backend local)",
                                 param_hint="--backend")
    if model == MULTITASK:  # a ranker over logged impressions, not a candidate source
        if split not in (None, SplitKind.temporal):
            raise typer.BadParameter("the multitask ranker uses a temporal split of impressions", param_hint="--split")
        from rankstack.cli.evaluate_multitask import evaluate_multitask

        with friendly_errors():
            evaluate_multitask(dataset, params=params, eval_on=target, device=device, data_dir=data_dir,
                               runs_dir=runs_dir, json_out=json_out, options=options)
        return
    if model == "ease" and "l2" in params:  # several λ: one Gram matrix, each λ scored on validation
        with friendly_errors():
            from rankstack.experiments.lambda_path import parse_l2_grid

            l2s = parse_l2_grid(params["l2"])
        if l2s is not None and backend.is_ray:
            raise typer.BadParameter("ray: EASE's λ path (several l2) runs in this process only (--backend local)",
                                     param_hint="--backend")
        if l2s is not None:
            _evaluate_l2_grid(dataset, l2s, params, split, target, ks, device, data_dir, runs_dir, json_out, options)
            return
    with friendly_errors():
        from rankstack.data.loaders import open_dataset, standard_split
        from rankstack.device import resolve_device
        from rankstack.experiments.evaluate_run import run_experiment, save_run, save_run_report
        from rankstack.pipeline.components import settings as validated

        validated("source", str(model), params)  # bad settings fail before the data is loaded
        if device is not None:
            resolve_device(device)
        t0 = time.perf_counter()
        with console.status(f"loading {dataset}", spinner="dots") if not json_out else nullcontext():
            loaded = open_dataset(dataset, data_dir, options)
        load_s = time.perf_counter() - t0
        data = loaded.dataset
        choice = standard_split(dataset, data, loaded.info, requested=split.value if split is not None else None)
        read = {"read": loaded.info.to_json()} if loaded.info is not None else {}
        for note in loaded.info.notes if loaded.info is not None else []:
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        record = run_experiment(
            data, choice.kind, str(model), params, ks=ks, eval_on=target, device=device, load_s=load_s,
            about_data={"split_reason": choice.reason, **read}, evaluation=evaluation_for(backend),
        )
        path = save_run(record, runs_dir)
        record["report_path"] = str(save_run_report(record, path.with_name("report.html")))
    record["result_path"] = str(path)
    if json_out:
        typer.echo(json.dumps(record, default=str))
        if (record["training"] or {}).get("warning"):
            err_console.print(f"[yellow]warning:[/] {escape(record['training']['warning'])}")
        return
    info = record["dataset"]
    console.print(
        f"[bold]{info['name']}[/]: {info['users']:,} users, {info['items']:,} items, {info['events']:,} events; "
        f"split {info['split']} ({info['split_reason']}) {info['split_sizes']}; evaluated on {info['evaluated_on']}: "
        f"{info['held_out']['events']:,} events ({info['held_out']['what']})"
    )
    console.print(metric_grid(f"{model} on {info['name']} — full ranking", record["metrics"]))
    print_training(record["training"], str(model))
    t = record["timings"]
    console.print(f"fit {t['fit_s']:.2f} s, evaluate {t['evaluate_s']:.2f} s, total {t['total_s']:.2f} s → {path}, "
                  f"{record['report_path']}")
