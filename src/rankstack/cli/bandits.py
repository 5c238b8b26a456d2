"""``rankstack bandits compare``: learning policies on one simulated stream, judged by the simulator's truth."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import console, err_console

app = typer.Typer(no_args_is_help=True, help="Run and compare learning bandit policies on the marketplace simulator.")



@app.callback()
def _group() -> None:
    """Run and compare learning bandit policies on the marketplace simulator."""


DEFAULT_POLICIES = "uniform,bernoulli_ts,linucb,lints,neural_linear,squarecb"


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.command("compare")
def compare(
    policies: Annotated[str, typer.Option(
        "--policies", help="Comma-separated: uniform, epsilon_greedy, bernoulli_ts, linucb, lints, logistic_ts, "
                           "neural_linear, neural_linear_learned, squarecb, linucb_hybrid, reinforce_topk, vw_squarecb "
                           "(Vowpal Wabbit; needs the peers extra).")
    ] = DEFAULT_POLICIES,
    rounds: Annotated[int, typer.Option("--rounds", help="Requests (slates of 5) in the stream.")] = 200_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world, the stream and the policies.")] = 0,
    batch: Annotated[int, typer.Option("--batch", help="Rounds per policy update (mini-batch).")] = 1000,
    propensity_samples: Annotated[int, typer.Option(
        "--propensity-samples", help="Monte-Carlo draws per Thompson propensity (0: not estimated).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Run each policy on the same simulated stream; CTR, revenue per 1,000 impressions and regret vs the oracle."""
    from rankstack.bandits.policy_comparison import check_names
    from rankstack.bandits.policy_comparison import compare as run_compare
    from rankstack.progress import new_progress

    names = [p.strip() for p in policies.split(",") if p.strip()]
    try:
        check_names(names)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if rounds < 1 or batch < 1 or propensity_samples < 0:
        raise _fail(f"--rounds and --batch must be >= 1 and --propensity-samples >= 0, got {rounds}, {batch}, "
                    f"{propensity_samples}")
    t0 = time.perf_counter()
    with new_progress() as progress:
        tasks = {name: progress.add_task(name, total=rounds, start=False) for name in names}
        started: set[str] = set()

        def advance(name: str, n: int) -> None:
            if name not in started:  # each policy's clock (elapsed, ETA) starts with its own run
                started.add(name)
                progress.start_task(tasks[name])
            progress.advance(tasks[name], n)

        report = run_compare(names, rounds, seed, batch=batch, propensity_samples=propensity_samples,
                             advance=advance)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if json_out:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"bandits on the simulator: {rounds:,} rounds, seed {seed}", title_justify="left")
    for column in ("policy", "CTR", "revenue / 1000", "regret (clicks)", "wall s"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    rows: dict[str, dict[str, float]] = report["policies"]  # type: ignore[assignment]
    for name, row in rows.items():
        table.add_row(name, f"{row['ctr']:.4f}", f"{row['revenue_per_1000']:.1f}", f"{row['regret']:,.0f}",
                      f"{row['wall_s']:.1f}")
    console.print(table)
