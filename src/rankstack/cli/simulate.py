"""``rankstack simulate``: write a simulated marketplace log (events, truth, features) to a folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rankstack.cli.common import console, friendly_errors
from rankstack.errors import ConfigError

if TYPE_CHECKING:
    from rankstack.simulation import SimulatorConfig


def build_config(config_path: Path | None, overrides: dict[str, object], policy: dict[str, object]) -> SimulatorConfig:
    """Defaults (or a YAML file) with the command-line overrides; errors name the bad setting."""
    from pydantic import ValidationError

    from rankstack.simulation import SimulatorConfig, load_simulator_config

    try:
        base = load_simulator_config(config_path) if config_path else SimulatorConfig()
        raw = base.model_dump()
        raw.update({k: v for k, v in overrides.items() if v is not None})
        raw["policy"] = {**raw["policy"], **{k: v for k, v in policy.items() if v is not None}}
        return SimulatorConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<config>'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid simulator settings: {problems}") from None


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write events.parquet, truth.parquet, … into.")],
    users: Annotated[int | None, typer.Option("--users", help="Number of users (default 10,000).")] = None,
    items: Annotated[int | None, typer.Option("--items", help="Number of items / offers (default 500).")] = None,
    impressions: Annotated[
        int | None, typer.Option("--impressions", help="Impressions to log (default 1,000,000).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the world and the log (default 0).")] = None,
    slate_size: Annotated[int | None, typer.Option("--slate-size", help="Slots per request (default 5).")] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Logging policy: softmax (default) | epsilon_greedy | uniform.")
    ] = None,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Exploration of epsilon_greedy.")] = None,
    drift: Annotated[float | None, typer.Option("--drift", help="Item-appeal drift amplitude (default 0).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with any SimulatorConfig setting.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Simulate an ad/offer marketplace log with known click and conversion probabilities."""
    from rankstack.bandits.logging_policies import simulate as simulate_log

    with friendly_errors():
        cfg = build_config(
            config,
            {"n_users": users, "n_items": items, "n_impressions": impressions, "seed": seed,
             "slate_size": slate_size, "drift": drift},
            {"kind": policy, "epsilon": epsilon},
        )
        t0 = time.perf_counter()
        log = simulate_log(cfg)
        sim_s = time.perf_counter() - t0
        dataset = log.save(out)
        total_s = time.perf_counter() - t0
    summary = {**log.summary(), "users_seen": dataset.n_users, "items_seen": dataset.n_items,
               "events": len(dataset), "simulate_s": round(sim_s, 3), "total_s": round(total_s, 3), "out": str(out)}
    if json_out:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"simulated marketplace → {out}", title_justify="left")
    table.add_column("quantity", style="bold")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:,.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int)
                      else str(value))
    console.print(table)
