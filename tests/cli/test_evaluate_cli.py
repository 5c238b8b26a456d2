"""`rankstack evaluate` and `rankstack quickstart` end to end through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.evaluation.fit_summary import STOPPED_BY

runner = CliRunner()


def _event_log(tmp_path: Path) -> Path:
    """A timed log: odd users watch i0 first, even users last, so i0 is the top unseen item for even users."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        items = rng.choice(np.arange(1, 40), size=6, replace=False)
        for t, item in enumerate(items):
            rows.append((f"u{user}", f"i{item}", 1_700_000_000 + 100 * t))
        rows.append((f"u{user}", "i0", 1_700_000_000 + (1000 if user % 2 == 0 else -1000)))
    path = tmp_path / "events.csv"
    pl.DataFrame(rows, schema=["user", "item", "ts"], orient="row").write_csv(path)
    return path


def test_evaluate_on_an_event_log_writes_a_run_record(tmp_path: Path) -> None:
    log = _event_log(tmp_path)
    # the generic loader expects canonical column names, so map them first
    canonical = tmp_path / "canonical.csv"
    pl.read_csv(log).rename({"user": "user_id", "item": "item_id", "ts": "timestamp"}).write_csv(canonical)
    result = runner.invoke(
        app, ["evaluate", "--dataset", str(canonical), "--model", "popular", "--k", "1,5", "--json",
              "--runs-dir", str(tmp_path / "runs")],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["dataset"]["split"] == "leave_one_out"
    assert record["metrics"]["hr@1"] >= 0.5  # every even user's test item is the most popular unseen one
    assert set(record) >= {"run_id", "dataset", "model", "metrics", "timings", "machine", "code_version"}
    assert len(record["dataset"]["checksum"]) == 64
    saved = json.loads(Path(record["result_path"]).read_text())
    assert saved["metrics"] == record["metrics"]


def test_evaluate_bundled_dataset_prints_a_table(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--dataset", "ml-latest-small", "--model", "itemknn", "--set", "neighbors=50",
              "--runs-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "recall" in result.output and "@20" in result.output and "itemknn" in result.output
    record = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert record["model"]["config"]["neighbors"] == 50
    assert 0.0 < record["metrics"]["recall@20"] < 1.0


def test_evaluate_on_validation_fits_on_train_only(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--dataset", "ml-latest-small", "--model", "popular", "--eval-on", "validation",
              "--json", "--runs-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["evaluated_on"] == "validation"


def test_evaluate_on_a_carved_validation_slice_says_what_it_scores(tmp_path: Path) -> None:
    """A temporal split has no validation events; the scored 10% of train is counted and named, not 'validation: 0'."""
    base = ["evaluate", "--dataset", "ml-latest-small", "--model", "popular", "--split", "temporal", "--eval-on",
            "validation", "--runs-dir", str(tmp_path)]
    record = json.loads(runner.invoke(app, [*base, "--json"]).stdout)["dataset"]
    assert record["split_sizes"]["validation"] == 0
    held_out = record["held_out"]
    assert 0 < held_out["events"] < record["split_sizes"]["train"] // 5
    assert held_out["what"] == "10% of train per user, held out from fitting"
    text = " ".join(runner.invoke(app, base, env={"COLUMNS": "300"}).output.split())
    assert f"evaluated on validation: {held_out['events']:,} events (10% of train per user, held out from fitting)" \
        in text


def test_quickstart_trains_the_pipeline_compares_baselines_and_writes_a_report(tmp_path: Path) -> None:
    config = tmp_path / "quick.yaml"
    config.write_text(
        "name: quick\nsources:\n  - {name: popular, k: 50, quota: 10}\n"
        "  - {name: itemknn, settings: {neighbors: 50}, k: 100}\nmerge: {k: 100}\n"
        "evaluation: {ks: [10, 20], funnel_ks: [50, 100]}\n"
    )
    artifact = tmp_path / "artifact"
    result = runner.invoke(app, ["quickstart", "--out", str(tmp_path), "--users", "2", "--config", str(config),
                                 "--artifact", str(artifact)])
    assert result.exit_code == 0, result.output
    for name in ("popular", "itemknn", "ease", "pipeline"):
        assert name in result.output
    assert "Toy Story" in result.output or "(19" in result.output  # movie titles, not ids
    assert f"rankstack serve {artifact}" in " ".join(result.output.split())
    page = (tmp_path / "index.html").read_text()
    assert "data:image/png;base64," in page and "Example recommendations" in page
    assert "<h2>Training</h2>" in page and "<th>itemknn</th><td>0</td><td>-</td><td>converged</td>" in page
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["metrics"]) == {"popular", "itemknn", "ease", "pipeline"}
    assert saved["metrics"]["ease"]["recall@10"] > saved["metrics"]["popular"]["recall@10"]
    assert (artifact / "manifest.json").is_file() and saved["version"].startswith("quick-")


def test_validation_is_carved_from_train_when_the_split_has_none() -> None:
    rows = [(u, i, "train" if (u + i) % 4 else "test") for u in range(30) for i in range(12) if (u * i) % 5 != 1]
    from rankstack.data.dataset import Dataset
    from rankstack.data.schema import EventSchema
    from rankstack.data.splits import predefined
    from rankstack.experiments.evaluate_run import fit_and_eval_parts

    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "split"], orient="row")
    data = Dataset.from_events(frame, name="pre", schema=EventSchema(context_columns=("split",)))
    split = predefined(data)
    fit, held = fit_and_eval_parts(split, "validation")
    train_rows = set(split.train.events.select("user_id", "item_id").iter_rows())
    fit_rows = set(fit.events.select("user_id", "item_id").iter_rows())
    held_rows = set(held.events.select("user_id", "item_id").iter_rows())
    assert held_rows and fit_rows | held_rows == train_rows and not fit_rows & held_rows


# Tiny settings per candidate source of the registry (a new source needs a row: the contract covers every one).
TINY_SETTINGS: dict[str, list[str]] = {
    "popular": [], "itemknn": [], "ease": [], "als": ["iterations=2", "factors=8"],
    "lightgcn": ["epochs=2", "embedding_dim=8", "eval_every=1", "batch_size=64"],
    "two-tower": ["epochs=1", "embedding_dim=8", "hidden_dim=8", "history_len=4"],
    "sasrec": ["epochs=2", "max_len=8", "hidden_dim=8"],
}


def _canonical_log(tmp_path: Path) -> Path:
    canonical = tmp_path / "canonical.csv"
    pl.read_csv(_event_log(tmp_path)).rename({"user": "user_id", "item": "item_id", "ts": "timestamp"}).write_csv(
        canonical)
    return canonical


def test_every_source_has_tiny_settings_here() -> None:
    from rankstack.pipeline.components import names

    assert set(TINY_SETTINGS) == set(names("source"))


@pytest.mark.parametrize("model", list(TINY_SETTINGS))
def test_the_json_of_every_model_says_how_its_training_went(model: str, tmp_path: Path,
                                                            one_torch_thread: None) -> None:
    args = ["evaluate", "--dataset", str(_canonical_log(tmp_path)), "--model", model, "--json", "--runs-dir",
            str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, *(x for s in TINY_SETTINGS[model] for x in ("--set", s))])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["stopped_by"] in STOPPED_BY and isinstance(record["epochs_run"], int)
    assert {k: record["training"][k] for k in ("epochs_run", "best_epoch", "stopped_by")} == {
        k: record[k] for k in ("epochs_run", "best_epoch", "stopped_by")}
    if model in ("popular", "itemknn", "ease"):  # closed form: the documented convention
        assert (record["epochs_run"], record["best_epoch"], record["stopped_by"]) == (0, None, "converged")
    else:
        assert record["epochs_run"] >= 1 and record["best_epoch"] is not None
    saved = json.loads(Path(record["result_path"]).read_text())
    assert saved["training"] == record["training"]
    report = Path(record["report_path"]).read_text()
    assert "<h2>Training</h2>" in report and f"<td>{record['stopped_by']}</td>" in report


def test_the_table_shows_epochs_best_epoch_stop_reason_and_curve(tmp_path: Path, one_torch_thread: None) -> None:
    args = ["evaluate", "--dataset", str(_canonical_log(tmp_path)), "--model", "sasrec", "--runs-dir",
            str(tmp_path / "runs"), *(x for s in TINY_SETTINGS["sasrec"] for x in ("--set", s))]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for words in ("epochs run", "2 of 2", "best epoch", "stopped by", "epochs", "validation val_ndcg@10", "1:0."):
        assert words in result.stdout


def test_a_budget_stop_warns_on_stderr_next_to_the_json(tmp_path: Path, one_torch_thread: None) -> None:
    args = ["evaluate", "--dataset", str(_canonical_log(tmp_path)), "--model", "lightgcn", "--json", "--runs-dir",
            str(tmp_path / "runs"), *(x for s in TINY_SETTINGS["lightgcn"] for x in ("--set", s)),
            "--set", "time_budget_s=1e-9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["epochs_run"], record["stopped_by"]) == (0, "budget")
    assert "without a validation curve" in record["training"]["warning"]
    assert "warning:" in result.stderr and "time_budget_s=1e-09" in result.stderr


def test_the_quickstart_report_lists_the_training_of_every_fitted_model() -> None:
    from types import SimpleNamespace

    from rankstack.cli.quickstart import _training
    from rankstack.evaluation.fit_summary import FitSummary

    class Trained:
        """A model trained in epochs, as the pipeline holds it."""

        name, closed_form = "sasrec", False

        def __init__(self, summary: FitSummary | None) -> None:
            self.summary = summary

        def fit_summary(self) -> FitSummary | None:
            return self.summary

    ran = FitSummary(3, 2, "converged", 10, "val_ndcg@10", ((1, 0.1), (2, 0.2), (3, 0.1)))
    pipeline = SimpleNamespace(parts=SimpleNamespace(sources={"sasrec": Trained(ran), "unfitted": Trained(None)},
                                                     ranker=SimpleNamespace(source=Trained(ran))))
    baseline = Trained(FitSummary.closed_form())
    assert _training(pipeline, {"ease": baseline}) == {  # type: ignore[arg-type]
        "sasrec": ran, "ease": FitSummary.closed_form(), "ranker (sasrec)": ran}
