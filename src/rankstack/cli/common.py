"""Helpers shared by CLI commands: parsing options and printing errors without tracebacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from rankstack.errors import RankstackError

console = Console()
err_console = Console(stderr=True)


def parse_ks(text: str) -> list[int]:
    """``"10,20"`` → ``[10, 20]`` (positive, de-duplicated, sorted)."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers like 10,20, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter(f"every K must be a positive integer, got {text!r}")
    return ks


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
