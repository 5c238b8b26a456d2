"""``rankstack tune`` on a local Ray instance (2 CPUs): the best validation setting is chosen, test is used once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.dataset import Dataset
from rankstack.data.splits import make_split
from rankstack.experiments.evaluate_run import evaluate_source, fit_and_eval_parts
from rankstack.experiments.tuning import run_trial
from rankstack.pipeline.components import build_source
from rankstack.pipeline.config import load_pipeline_config

pytestmark = pytest.mark.ray
L2S = [0.5, 30.0, 3000.0]


def test_tune_chooses_the_best_validation_setting_and_tests_it_once(ray_instance: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import rankstack.distributed.search as search_module

    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t) for u in range(100)
            for t, i in enumerate(rng.choice(40, size=int(rng.integers(5, 12)), replace=False))]
    pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").write_csv(tmp_path / "log.csv")
    space = {"dataset": str(tmp_path / "log.csv"), "model": "ease", "metric": "ndcg@10", "samples": 1,
             "space": {"l2": {"grid": L2S}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    parts: list[str] = []
    real = search_module.fit_and_eval_parts
    monkeypatch.setattr(search_module, "fit_and_eval_parts", lambda split, on: parts.append(on) or real(split, on))

    result = CliRunner().invoke(app, ["tune", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "out"),
                                      "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # Ray Tune's own tables went to stderr
    assert parts == ["validation", "test"]  # the trials got the validation parts; test once, after choosing

    from rankstack.data.loaders import open_dataset, standard_split

    data: Dataset = open_dataset(tmp_path / "log.csv").dataset
    split = make_split(data, standard_split(tmp_path / "log.csv", data).kind)
    fit, held = fit_and_eval_parts(split, "validation")
    scores = {l2: run_trial("ease", {"l2": l2}, fit, held, [10, 20])["ndcg@10"] for l2 in L2S}
    best = max(scores, key=scores.__getitem__)
    assert printed["chosen"] == {"l2": best}
    assert printed["validation"]["ndcg@10"] == pytest.approx(scores[best], abs=1e-12)
    fit_t, test_t = fit_and_eval_parts(split, "test")
    test, _ = evaluate_source(build_source("ease", {"l2": best}), fit_t, test_t, [10, 20])
    assert printed["test"]["ndcg@10"] == pytest.approx(test["ndcg@10"], abs=1e-12)
    trials = pl.read_csv(tmp_path / "out" / "trials.csv")
    assert trials.height == 3 and trials["finished"].all()
    assert load_pipeline_config(tmp_path / "out" / "chosen.yaml").sources[0].settings == {"l2": best}
