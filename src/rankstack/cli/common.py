"""Helpers shared by CLI commands: parsing options and printing errors without tracebacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankstack.errors import RankstackError

console = Console()
err_console = Console(stderr=True)


def artifact_size(path: Path, parts: int = 3) -> str:
    """``"383 MB (sources/ease 378 MB, …)"``: an artifact's size on disk and its largest parts."""
    sizes: dict[str, int] = {}
    for file in path.rglob("*"):
        if file.is_file():
            rel = file.relative_to(path).parts
            part = "/".join(rel[:2]) if len(rel) > 2 else rel[0]
            sizes[part] = sizes.get(part, 0) + file.stat().st_size
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:parts]
    return f"{_mb(sum(sizes.values()))} ({', '.join(f'{name} {_mb(n)}' for name, n in largest)})"


def _mb(n: int) -> str:
    """Bytes as megabytes for people."""
    return f"{n / 1e6:.1f} MB" if n < 1e7 else f"{n / 1e6:.0f} MB"


def parse_ks(text: str) -> list[int]:
    """``"10,20"`` → ``[10, 20]``; a bad list becomes a usage error naming ``--k``."""
    from rankstack.evaluation.metrics import parse_ks as evaluation_parse_ks

    try:
        return evaluation_parse_ks(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--k") from None


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """``["l2=80", "device=cpu"]`` → ``{"l2": 80, "device": "cpu"}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn rankstack's own errors (bad data, unknown dataset, bad config) into a message and exit code 2."""
    try:
        yield
    except (RankstackError, FileNotFoundError) as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None


def metric_grid(title: str, metrics: dict[str, float]) -> Table:
    """A Rich table with one row per metric family and one column per cut-off K (``recall@10`` → row, @10)."""
    families: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        family, _, k = key.partition("@")
        if k:
            families.setdefault(family, {})[k] = value
    ks = sorted({k for row in families.values() for k in row}, key=int)
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for family, row in families.items():
        table.add_row(family, *(f"{row[k]:.4f}" if k in row else "" for k in ks))
    return table


def training_grid(title: str, training: dict[str, Any]) -> Table:
    """A Rich table of how a model's training went (a run record's ``training``): epochs run of the configured,
    the kept (best) epoch, why it stopped, the fit's wall time and the validation curve at a few epochs."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    epochs = training.get("epochs")
    table.add_row("epochs run", f"{training['epochs_run']}" + (f" of {epochs}" if epochs else ""))
    best = training.get("best_epoch")
    table.add_row("best epoch", "-" if best is None else str(best))
    table.add_row("stopped by", str(training["stopped_by"]))
    curve = training.get("curve") or []
    if curve:
        step = max(1, len(curve) // 8)
        points = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
        table.add_row(f"validation {training.get('metric')}",
                      "  ".join(f"{p['epoch']}:{p['value']:.4f}" for p in points))
    return table


def print_training(training: dict[str, Any] | None, model: str) -> None:
    """The training table on stdout and its warning, if any, on stderr."""
    if not training:
        return
    console.print(training_grid(f"{model}: training", training))
    if training.get("warning"):
        err_console.print(f"[yellow]warning:[/] {escape(training['warning'])}")
