"""The ``rankstack`` command line (Typer)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rankstack",
    help="rankstack: multi-stage personalization — retrieval, ranking, re-ranking, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    """Attach the sub-commands (kept in their own modules)."""
    from rankstack.cli import data, evaluate, models, quickstart, recs, simulate, train

    app.add_typer(data.app, name="data", help="List and download datasets.")
    app.command("evaluate")(evaluate.evaluate)
    app.command("evaluate-recs")(recs.evaluate_recs)
    app.command("quickstart")(quickstart.quickstart)
    app.command("simulate")(simulate.simulate)
    app.command("train")(train.train)
    app.add_typer(models.app, name="models", help="List, promote and roll back trained pipeline versions.")
    from rankstack.cli.serve import serve

    app.command("serve")(serve)
    from rankstack.reranking.cli import check_rules

    app.command("check-rules")(check_rules)


_register()
