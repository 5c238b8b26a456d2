"""A Typer command group that imports each sub-command's module only when that command runs.

``rankstack --help`` lists the commands from a table of names and one-line helps, so it imports none of
them (no torch, polars, FastAPI or Matplotlib); ``rankstack evaluate …`` imports ``rankstack.cli.evaluate``
and nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer import _click as click  # typer vendors click: its groups take and return these classes
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives (``"module:attribute"``: a command function or a Typer app) and its help line."""

    target: str
    help: str

    def load(self, name: str) -> click.Command:
        """Import the target and build its click command, named ``name``."""
        module, _, attribute = self.target.partition(":")
        obj = getattr(importlib.import_module(module), attribute)
        if isinstance(obj, typer.Typer):
            command = typer.main.get_command(obj)
            command.help = command.help or self.help
        else:
            holder = typer.Typer(add_completion=False)
            holder.command(name)(obj)
            command = typer.main.get_command(holder)
        command.name = name
        return command


class Placeholder(TyperCommand):
    """Stands in for a sub-command in the help listing until it is run."""

    def __init__(self, name: str, entry: LazyCommand) -> None:
        super().__init__(name, help=entry.help)
        self.entry = entry


class LazyGroup(TyperGroup):
    """A ``TyperGroup`` whose commands come from ``lazy`` and are imported by ``resolve_command`` (on use).

    ``get_command`` returns a :class:`Placeholder` (name and help only) for a command not run yet.
    """

    lazy: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, entry in self.lazy.items():
            self.commands.setdefault(name, Placeholder(name, entry))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Find the command named by ``args[0]``, importing its module the first time."""
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, Placeholder):
            command = self.commands[name] = command.entry.load(name)
        return name, command, rest
