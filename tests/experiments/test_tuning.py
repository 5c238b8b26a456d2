"""The search-space file and one trial (no Ray here): bad files name the field, epochs are reported as they go."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from rankstack.data.dataset import Dataset
from rankstack.data.splits import make_split
from rankstack.errors import ConfigError
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.tuning import chosen_pipeline, load_tune_spec, run_trial
from rankstack.pipeline.config import validate_pipeline_config

GOOD = {"dataset": "movielens-100k", "model": "ease", "space": {"l2": {"loguniform": [10, 5000]}}}


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"model": "bogus"}, "model: unknown model 'bogus'"),
    ({"space": {}}, "space: the space is empty"),
    ({"space": {"l2": {"normal": [1, 2]}}}, "space: space.l2: expected one of"),
    ({"space": {"l2": {"loguniform": [0, 5]}}}, "the low end must be > 0"),
    ({"space": {"l2": {"uniform": [5, 1]}}}, "low < high"),
    ({"space": {"neighbours": {"choice": [1, 2]}}}, "neighbours"),
    ({"metric": "ndcg@50"}, "must be name@k with k in ks"),
    ({"settings": {"l2": 10}}, "both fixed (settings) and searched (space)"),
    ({"samples": 0}, "samples: Input should be greater than or equal to 1"),
    ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
])
def test_bad_space_files_name_the_file_and_field(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_tune_spec(_write(tmp_path, {**GOOD, **change}))
    assert str(caught.value).startswith(str(tmp_path / "space.yaml"))
    assert message in str(caught.value)


def test_the_chosen_setting_is_a_pipeline_train_accepts(tmp_path: Path) -> None:
    spec = load_tune_spec(_write(tmp_path, {**GOOD, "settings": {"device": "cpu"}}))
    config = validate_pipeline_config(chosen_pipeline(spec, {"l2": 250.0}, None))
    assert config.sources[0].name == "ease" and config.sources[0].settings == {"device": "cpu", "l2": 250.0}
    assert config.data.eval_on == "test"


def test_a_trial_reports_every_validated_epoch_and_returns_validation_metrics() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t) for u in range(60)
            for t, i in enumerate(rng.choice(30, size=8, replace=False))]
    data = Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
                               .with_columns(pl.from_epoch("timestamp")), name="tiny")
    fit, held = fit_and_eval_parts(make_split(data, "leave_one_out"), "validation")
    seen: list[tuple[int, float, str | None]] = []
    metrics = run_trial("lightgcn", {"epochs": 4, "eval_every": 2, "embedding_dim": 8, "layers": 1, "device": "cpu"},
                        fit, held, [10], lambda epoch, score, metric: seen.append((epoch, score, metric)))
    assert [epoch for epoch, _, _ in seen] == [2, 4]
    assert all(0 <= score <= 1 for _, score, _ in seen) and seen[0][2] is not None
    assert metrics["users_evaluated"] == held.events.get_column("user_id").n_unique()
