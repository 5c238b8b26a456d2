"""The ``rankstack`` command line (Typer).

Each sub-command's module is imported only when that command runs (see :mod:`rankstack.cli.lazy`), so
``rankstack --help`` and usage errors start in well under a second; ``COMMANDS`` lists them with the first
line of their help (a test keeps the two equal).
"""

from __future__ import annotations

import typer

from rankstack.cli.lazy import LazyCommand, LazyGroup

COMMANDS: dict[str, LazyCommand] = {
    "data": LazyCommand("rankstack.cli.data:app", "List, download, inspect and prepare datasets."),
    "evaluate": LazyCommand(
        "rankstack.cli.evaluate:evaluate",
        "Train MODEL on DATASET's standard split, evaluate with exact full ranking, save runs/<id>/result.json."),
    "evaluate-recs": LazyCommand(
        "rankstack.cli.evaluate_recs:evaluate_recs",
        "Evaluate a recommendations file (full lists, taken as given) against held-out test interactions."),
    "quickstart": LazyCommand(
        "rankstack.cli.quickstart:quickstart",
        "Train the default pipeline on the bundled ml-latest-small, compare it with the baselines, write a report."),
    "simulate": LazyCommand(
        "rankstack.cli.simulate:simulate",
        "Simulate an ad/offer marketplace log with known click and conversion probabilities."),
    "train": LazyCommand(
        "rankstack.cli.train:train",
        "Train the pipeline's stages in order, evaluate them offline, write a versioned artifact and register it."),
    "models": LazyCommand("rankstack.cli.models:app", "List, promote and roll back trained pipeline versions."),
    "serve": LazyCommand(
        "rankstack.cli.serve:serve",
        "Serve recommendations over HTTP: /v1/recommend, /v1/events, /healthz, /readyz, /metrics, /admin/reload."),
    "ope": LazyCommand(
        "rankstack.cli.ope:ope",
        "Estimate policies' values from a logged bandit log with every off-policy estimator, with intervals."),
    "loop": LazyCommand(
        "rankstack.cli.loop:loop",
        "Closed loop on the simulator: explore, log, estimate a candidate pipeline off-policy, deploy it, compare."),
    "tune": LazyCommand(
        "rankstack.cli.tune:tune",
        "Search a model's settings on validation with Ray Tune (ASHA), then test the chosen setting once."),
    "bandits": LazyCommand(
        "rankstack.cli.bandits:app", "Run and compare learning bandit policies on the marketplace simulator; "
        "train the sequential REINFORCE policy from a service log."),
    "check-rules": LazyCommand(
        "rankstack.cli.rules:check_rules",
        "Validate a rules file; with --dataset, check its attributes exist in the item catalog too."),
}


class RankstackGroup(LazyGroup):
    """The top-level ``rankstack`` group over :data:`COMMANDS`."""

    lazy = COMMANDS


def _main() -> None:
    """rankstack: multi-stage personalization — retrieval, ranking, re-ranking, evaluation."""


app = typer.Typer(
    name="rankstack",
    cls=RankstackGroup,
    callback=_main,
    help="rankstack: multi-stage personalization — retrieval, ranking, re-ranking, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
