"""``rankstack bandits compare``: learning policies on one simulated stream, judged by the simulator's truth;
``rankstack bandits reinforce``: the sequential top-K REINFORCE policy trained from a served pipeline's event log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import console, err_console, friendly_errors

app = typer.Typer(no_args_is_help=True, help="Run and compare learning bandit policies on the marketplace simulator; "
                                              "train the sequential REINFORCE policy from a service log.")



@app.callback()
def _group() -> None:
    """Run and compare learning bandit policies on the marketplace simulator; train REINFORCE from a service log."""


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


@app.command("reinforce")
def reinforce(
    artifact: Annotated[Path, typer.Option("--artifact", help="Pipeline artifact with a SASRec (ranker or source): "
                                                              "its user states and item table.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for policy.safetensors and policy.json.")],
    state: Annotated[str | None, typer.Option("--state", help="The service's state store holding the logged events "
                                                              "(sqlite:PATH).")] = None,
    log_spec: Annotated[str | None, typer.Option("--log", help="Or a canonical event log with impressions, clicks "
                                                               "and propensities: a dataset name, file or folder "
                                                               "(e.g. rankstack simulate's output).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="K of the top-K correction λ_K = K(1−π)^{K−1}.")] = 1,
    cap: Annotated[float, typer.Option("--cap", help="Cap c of the importance weight min(π/β, c).")] = 10.0,
    correction: Annotated[bool, typer.Option("--correction/--no-correction",
                                             help="Off-policy correction (off: plain REINFORCE on the log).")] = True,
    negatives: Annotated[int, typer.Option("--negatives", help="Sampled-softmax negatives per batch (0: full "
                                                               "softmax over the catalogue).")] = 0,
    proposal: Annotated[str, typer.Option("--proposal", help="Negatives' proposal: uniform or popularity.")]
    = "uniform",
    reward_event: Annotated[str, typer.Option("--reward", help="Event that counts as reward 1: click or "
                                                               "conversion.")] = "click",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the rewarded rows.")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 0.01,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per gradient step.")] = 512,
    validation: Annotated[float, typer.Option("--validation", help="Share of the latest rows held out.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shuffles and the sampled negatives.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Train top-K off-policy-corrected REINFORCE on the SASRec user state from the service's (or a simulated) log."""
    from pydantic import ValidationError

    from rankstack.bandits.reinforce_seq import SeqReinforceConfig
    from rankstack.errors import ConfigError

    with friendly_errors():
        if (state is None) == (log_spec is None):
            raise ConfigError("give exactly one of --state (the service's store) and --log (an event log)")
        if reward_event not in ("click", "conversion"):
            raise ConfigError(f"--reward must be click or conversion, got {reward_event!r}")
        try:
            config = SeqReinforceConfig(top_k=top_k, cap=cap, correction=correction, negatives=negatives or None,
                                        proposal=proposal, epochs=epochs, lr=lr, batch_size=batch_size,  # type: ignore[arg-type]
                                        validation=validation, seed=seed)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
        from rankstack.experiments.reinforce_run import train_from_service

        log = None if json_out else (lambda m: err_console.print(m, highlight=False))
        event: Literal["click", "conversion"] = "click" if reward_event == "click" else "conversion"
        source = state if state is not None else str(log_spec)
        report = train_from_service(artifact, source, out, config, reward_event=event, log=log)
    if json_out:
        typer.echo(json.dumps(report))
        return
    val = report["validation"]
    console.print(f"policy saved to {out}: {report['rows']:,} rows ({report['share_with_propensity']:.0%} with "
                  f"logged propensities), {report['cap_hits_last_epoch']:,} weight-cap hits in the last epoch; "
                  f"validation capped IPS {val['capped_ips']:.5f}, SNIPS {val['snips']:.5f} "
                  f"(logging CTR {report['validation_logging_ctr']:.5f})", highlight=False)
