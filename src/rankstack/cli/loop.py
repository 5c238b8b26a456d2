"""``rankstack loop``: the closed loop on the marketplace simulator (explore → log → estimate off-policy → deploy)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rankstack.cli.common import console, err_console, friendly_errors
from rankstack.errors import ConfigError

# CLI names of the loop's estimators (rankstack.experiments.loop_estimates.LOOP_ESTIMATORS)
ESTIMATOR_NAMES = {"independent-ips": "independent IPS", "independent-dr": "independent DR",
                   "reward-interaction-ips": "reward-interaction IPS", "standard-ips": "standard IPS"}


def _weights(text: str) -> tuple[float, ...]:
    """``2`` or ``0,0.5,1,2`` → click weights (non-negative, distinct); ConfigError otherwise."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--candidate: expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ConfigError(f"--candidate: expected distinct non-negative click weights, got {text!r}")
    return values


def _table(result: dict[str, Any]) -> Table:
    """Per candidate and estimator: errors against the realised value and interval coverage over the seeds."""
    s = result["settings"]
    table = Table(title=f"closed loop: {len(result['seeds'])} seeds, {s['metric']} per 1,000 impressions",
                  title_justify="left")
    for column in ("candidate", "estimator", "mean |rel. err.|", "max |rel. err.|", "within 10 %", "inside 95 % CI",
                   "mean realised"):
        table.add_column(column, justify="left" if column in ("candidate", "estimator") else "right")
    for key, cand in result["summary"]["candidates"].items():
        for name, row in cand["estimators"].items():
            table.add_row(key, name, f"{row['mean_abs_relative_error']:.3f}", f"{row['max_abs_relative_error']:.3f}",
                          f"{row['within_10pct']}/{row['seeds']}", f"{row['inside_ci']}/{row['seeds']}",
                          f"{cand['mean_realised']:.2f}")
    return table


def loop(
    seeds: Annotated[int, typer.Option("--seeds", help="Independent repetitions (traffic, exploration, bootstrap).")]
    = 20,
    rounds: Annotated[int, typer.Option("--rounds", help="Requests logged with exploration per seed.")] = 5_000,
    deploy_rounds: Annotated[int, typer.Option("--deploy-rounds", help="Fresh requests the candidate serves per "
                                                                       "seed to measure its realised value.")] = 10_000,
    candidate: Annotated[str, typer.Option("--candidate", help="The candidate pipeline's value-model click weight "
                                                               "(revenue + w·click); a comma list tunes w by OPE.")]
    = "2",
    current: Annotated[float, typer.Option("--current", help="The current (logging) pipeline's click weight.")] = 0.5,
    epsilon: Annotated[float, typer.Option("--epsilon", help="ε of the current pipeline's ε-greedy exploration.")]
    = 0.3,
    pool: Annotated[int, typer.Option("--pool", help="Items ε-greedy explores over (the top of the ranked list).")]
    = 10,
    metric: Annotated[str, typer.Option("--metric", help="The value: clicks or revenue (per 1,000 impressions).")]
    = "clicks",
    estimator: Annotated[str, typer.Option("--estimator", help="The estimator the headline and plot report: "
                                                               + ", ".join(ESTIMATOR_NAMES) + ".")]
    = "independent-dr",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples (of requests) per interval.")]
    = 200,
    users: Annotated[int, typer.Option("--users", help="Simulated users.")] = 2_000,
    items: Annotated[int, typer.Option("--items", help="Simulated items.")] = 300,
    history: Annotated[int, typer.Option("--history", help="Impressions of the log the pipeline is trained on.")]
    = 100_000,
    fatigue: Annotated[float, typer.Option("--fatigue", help="Simulator fatigue per repeated impression (1: none; "
                                                             "below 1 the log's exposures bias every estimator).")]
    = 1.0,
    world_seed: Annotated[int, typer.Option("--world-seed", help="Seed of the simulated world and its history.")]
    = 0,
    first_seed: Annotated[int, typer.Option("--first-seed", help="The first loop seed (seeds run from it on).")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of the pipeline's multi-task ranker.")]
    = 10,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for result.json, estimates.png and table.md "
                                                           "(default runs/loop-<time>).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Closed loop on the simulator: explore, log, estimate a candidate pipeline off-policy, deploy it, compare."""
    with friendly_errors():
        if estimator not in ESTIMATOR_NAMES:
            raise ConfigError(f"--estimator: unknown {estimator!r}; expected one of {', '.join(ESTIMATOR_NAMES)}")
        if metric not in ("clicks", "revenue"):
            raise ConfigError(f"--metric must be clicks or revenue, got {metric!r}")
        from pydantic import ValidationError

        from rankstack.experiments.closed_loop import LoopSettings
        from rankstack.simulation.simulator_config import SimulatorConfig

        try:
            settings = LoopSettings(
                seeds=seeds, rounds=rounds, deploy_rounds=deploy_rounds, epsilon=epsilon, pool=pool,
                metric=metric,  # type: ignore[arg-type]
                current_click_weight=current, candidate_click_weights=_weights(candidate),
                estimator=ESTIMATOR_NAMES[estimator], bootstrap=bootstrap, first_seed=first_seed)
            if current < 0:
                raise ValueError(f"--current must be >= 0, got {current}")
            if epochs < 1:
                raise ValueError(f"--epochs must be at least 1, got {epochs}")
            sim_config = SimulatorConfig(n_users=users, n_items=items, n_impressions=history, seed=world_seed,
                                         fatigue=fatigue)
        except ValidationError as exc:
            raise ConfigError("; ".join(f"--{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                        for e in exc.errors())) from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        result = _run(settings, sim_config, epochs, quiet=json_out)
        folder = out or Path("runs") / time.strftime("loop-%Y%m%d-%H%M%S", time.gmtime())
        folder.mkdir(parents=True, exist_ok=True)
        from rankstack.experiments.loop_report import markdown_table, plot_estimates, tuning_table

        (folder / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        plot_estimates(result, folder / "estimates.png")
        (folder / "table.md").write_text(markdown_table(result) + "\n\n" + tuning_table(result) + "\n",
                                         encoding="utf-8")
    if json_out:
        print(json.dumps({"settings": result["settings"], "summary": result["summary"], "wall_s": result["wall_s"]}))
        return
    console.print(_table(result))
    head = result["summary"]["headline"]
    console.print(f"{head['estimator']}: within 10 % of the realised value in {head['within_10pct']}/{head['seeds']} "
                  f"seeds, realised inside the 95 % interval in {head['inside_ci']}/{head['seeds']}")
    tune = result["summary"].get("tuning")
    if tune:
        console.print(f"tuning by OPE picked the truth's best click weight in {tune['same_choice']}/{tune['seeds']} "
                      f"seeds; mean regret {tune['mean_relative_regret']:.2%} of the best realised value")
    console.print(f"wrote {folder / 'result.json'}, {folder / 'estimates.png'} and {folder / 'table.md'}")


def _run(settings: Any, sim_config: Any, epochs: int, *, quiet: bool) -> dict[str, Any]:
    """Build the world (simulate the history, train the pipeline), then run every seed."""
    from rankstack.experiments.closed_loop import run_loop
    from rankstack.experiments.loop_world import build_world
    from rankstack.provenance import code_version, machine_info

    def say(message: str) -> None:
        if not quiet:
            err_console.print(message, highlight=False)

    t0 = time.perf_counter()
    world = build_world(sim_config, log=say, epochs=epochs)
    say(f"world ready in {time.perf_counter() - t0:.1f} s (ranker trained in {world.train_s:.1f} s)")
    result = run_loop(world, settings, say)
    world.pipeline.close()
    result["simulator"] = sim_config.model_dump(mode="json")
    result["train_s"] = round(world.train_s, 2)
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    result["machine"] = machine_info()
    result["code_version"] = code_version()
    return result
