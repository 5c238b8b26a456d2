"""Pipeline YAML: the default mirrors its file; every bad input is refused naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rankstack.errors import ConfigError
from rankstack.pipeline.config import (
    CandidateRankerStage,
    LambdaRankStage,
    NeuralRankStage,
    default_config,
    load_pipeline_config,
    validate_pipeline_config,
)
from rankstack.pipeline.defaults import DEFAULT

from .conftest import config_dict

REPO = Path(__file__).resolve().parents[2]


def test_default_yaml_is_the_builtin_default() -> None:
    assert load_pipeline_config(REPO / "configs" / "pipelines" / "default.yaml") == default_config()
    assert load_pipeline_config(None).model_dump() == default_config().model_dump()
    assert default_config().data.name == DEFAULT["data"]["name"] == "ml-latest-small"


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(path: Path) -> None:
    assert load_pipeline_config(path).sources


def _keys(tree: Any) -> set[str]:
    """Every mapping key anywhere in a parsed YAML / dict tree."""
    if isinstance(tree, dict):
        return set(tree) | {k for v in tree.values() for k in _keys(v)}
    return {k for v in tree for k in _keys(v)} if isinstance(tree, list) else set()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_fix_epochs_not_wall_clock_budgets(path: Path) -> None:
    # a time budget makes the trained model, and so the reported metrics, depend on how busy the machine is
    assert "time_budget_s" not in _keys(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert "time_budget_s" not in _keys(DEFAULT)
    ranker = default_config().ranker
    assert isinstance(ranker, LambdaRankStage) and ranker.seed == 0  # LightGBM: seeded, deterministic, one thread


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


BAD: list[tuple[str, Any, str]] = [
    ("unknown top-level key", config_dict(colour="red"), "unknown field 'colour'"),
    ("no sources", config_dict(sources=[]), "field 'sources'"),
    ("unknown source", config_dict(sources=[{"name": "nope"}]), "sources[0] 'nope', field 'name': unknown source"),
    ("negative quota", config_dict(sources=[{"name": "popular", "quota": -1}]), "sources[0] 'popular', field 'quota'"),
    ("unknown source key", config_dict(sources=[{"name": "popular", "kk": 3}]), "sources[0] 'popular': unknown field"),
    ("repeated source", config_dict(sources=[{"name": "popular"}, {"name": "popular"}]), "repeated: ['popular']"),
    ("quotas over merge.k", config_dict(merge={"k": 5}, sources=[{"name": "popular", "quota": 6}]), "merge.k = 5"),
    ("negative candidate cache", config_dict(merge={"k": 30, "cache_mb": -1}), "field 'merge.cache_mb'"),
    ("candidate cache warm budget of 0", config_dict(merge={"k": 30, "warm_cache_s": 0}), "field 'merge.warm_cache_s'"),
    ("candidate cache warm not a flag", config_dict(merge={"k": 30, "warm_cache": "soon"}),
     "field 'merge.warm_cache'"),
    ("ranker cannot re-score", config_dict(ranker={"source": "ease"}), "field 'ranker.source'"),
    ("ranker unknown", config_dict(ranker={"source": "nope"}), "unknown source 'nope'"),
    ("bad policy", config_dict(exploration={"policy": "thompson"}), "field 'exploration.policy'"),
    ("epsilon above 1", config_dict(exploration={"policy": "epsilon_greedy", "epsilon": 1.5}),
     "field 'exploration.epsilon'"),
    ("zero temperature", config_dict(exploration={"temperature": 0}), "field 'exploration.temperature'"),
    ("negative deadline", config_dict(deadlines_ms={"ranker": -5}), "field 'deadlines_ms.ranker'"),
    ("zero cut-off", config_dict(evaluation={"ks": [0, 10]}), "field 'evaluation.ks'"),
    ("bad split", config_dict(data={"name": "x", "split": "sideways"}), "field 'data.split'"),
    ("name with a space", config_dict(name="my pipe"), "field 'name'"),
    ("bad rerank rule", config_dict(rerank={"rules": [{"name": "r", "type": "teleport"}]}), "field 'rerank.rules.0"),
    ("value without terms", config_dict(value={"objective": {"terms": "x"}}), "field 'value.objective.terms'"),
    ("index on a source without vectors", config_dict(sources=[{"name": "itemknn", "index": {"kind": "exact"}}]),
     "source 'itemknn' has no user/item vectors"),
    ("unknown index kind", config_dict(sources=[{"name": "lightgcn", "index": {"kind": "annoy"}}]),
     "sources[0] 'lightgcn', field 'index.kind'"),
    ("typo in the ranker's settings", config_dict(ranker={"source": "sasrec", "settings": {"epoch": 2}}),
     "field 'ranker.settings': invalid settings for model 'sasrec': unknown setting 'epoch'"),
    ("typo in a source's settings", config_dict(sources=[{"name": "itemknn", "settings": {"neighbours": 10}}]),
     "sources[0] 'itemknn', field 'settings': invalid settings for model 'itemknn': unknown setting 'neighbours'"),
    ("source setting out of range", config_dict(sources=[{"name": "ease", "settings": {"l2": -1}}]),
     "sources[0] 'ease', field 'settings': invalid settings for model 'ease': l2: Input should be greater than 0"),
    ("unknown index parameter", config_dict(sources=[{"name": "lightgcn", "index": {"kind": "exact",
                                                                                    "params": {"nope": 1}}}]),
     "sources[0] 'lightgcn', field 'index': params: nope"),
    ("unknown ranker kind", config_dict(ranker={"kind": "xgboost"}),
     "unknown kind 'xgboost'; expected 'sequential', 'multitask', 'lambdarank' or 'neural'"),
    ("lambdarank without a label window", config_dict(ranker={"kind": "lambdarank", "label_events": 0}),
     "field 'ranker.label_events'"),
    ("lambdarank base not a source", config_dict(ranker={"kind": "lambdarank", "base": "ease"}),
     "ranker.base: 'ease' is not among the sources"),
    ("lambdarank typo", config_dict(ranker={"kind": "lambdarank", "round": 5}), "unknown field 'round'"),
    ("lambdarank sequential cannot re-score", config_dict(ranker={"kind": "lambdarank", "sequential": {
        "source": "ease"}}), "field 'ranker.sequential.source'"),
    ("neural typo in its model", config_dict(ranker={"kind": "neural", "model": {"epoch": 5}}),
     "field 'ranker.model': unknown field 'epoch'"),
    ("neural without epochs", config_dict(ranker={"kind": "neural", "model": {"epochs": 0}}),
     "field 'ranker.model.epochs': Input should be greater than or equal to 1"),
    ("neural dropout of 1", config_dict(ranker={"kind": "neural", "model": {"dropout": 1.0}}),
     "field 'ranker.model.dropout'"),
    ("neural LightGBM setting", config_dict(ranker={"kind": "neural", "rounds": 5}), "unknown field 'rounds'"),
    ("neural base not a source", config_dict(ranker={"kind": "neural", "base": "ease"}),
     "ranker.base: 'ease' is not among the sources"),
    ("a source fitted once that cannot be", config_dict(ranker={"kind": "lambdarank"}, sources=[
        {"name": "itemknn", "fit": "once"}]), "source 'itemknn' cannot be fitted once"),
    ("a source continued that cannot be", config_dict(ranker={"kind": "lambdarank"}, sources=[
        {"name": "itemknn", "fit": "once_continued"}]), "source 'itemknn' cannot be fitted once"),
    ("a source continued without a candidate ranker", config_dict(sources=[
        {"name": "sasrec", "fit": "once_continued"}]), "fit: once (or once_continued) needs a learned candidate"),
    ("a sequential feature continued that cannot be", config_dict(ranker={"kind": "lambdarank", "sequential": {
        "source": "als", "fit": "once_continued"}}), "'als' cannot be continued"),
    ("a source fitted once without a candidate ranker", config_dict(sources=[{"name": "sasrec", "fit": "once"}]),
     "fit: once (or once_continued) needs a learned candidate ranker"),
    ("a source fitted at an unknown time", config_dict(sources=[{"name": "popular", "fit": "twice"}]),
     "sources[0] 'popular', field 'fit'"),
    ("top-level list", "- a\n- b\n", "expected a mapping"),
    ("broken YAML", "name: [unclosed\n", "invalid YAML at line"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_configs_are_refused_naming_file_and_field(tmp_path: Path, case: str, data: Any, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value), str(err.value)


def test_train_refuses_a_settings_typo_before_fitting_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rankstack.cli import app
    from rankstack.retrieval.source import CandidateSource

    fitted: list[str] = []
    for cls in CandidateSource.__subclasses__():
        monkeypatch.setattr(cls, "fit", lambda self, *_a, **_k: fitted.append(self.name) or self, raising=False)
    path = _write(tmp_path, config_dict(data={"name": "ml-latest-small"},
                                        ranker={"source": "sasrec", "settings": {"epoch": 2}}))
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(tmp_path / "out"), "--no-register"])
    assert result.exit_code == 2, result.output
    assert "unknown setting 'epoch'" in " ".join(result.output.split())
    assert fitted == []


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read pipeline config"):
        load_pipeline_config(tmp_path / "absent.yaml")


def test_rerank_may_be_a_file_next_to_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: cap, type: cap, attribute: category, max_per_slate: 2}\n")
    config = load_pipeline_config(_write(tmp_path, config_dict(rerank="rules.yaml")))
    assert config.rerank is not None and config.rerank.rules[0].name == "cap"
    assert config.stage_names() == ["retrieval", "rerank", "exploration"]


def test_an_event_log_next_to_the_pipeline_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("user_id,item_id\nu,i\n")
    config = load_pipeline_config(_write(tmp_path, config_dict(data={"name": "events.csv"})))
    assert config.data.name == str((tmp_path / "events.csv").resolve())
    assert load_pipeline_config(_write(tmp_path, config_dict(data={"name": "ml-latest-small"}))).data.name == (
        "ml-latest-small")


def test_the_neural_example_is_ltr_100k_with_the_neural_ranker() -> None:
    """``neural-100k.yaml`` differs from ``ltr-100k.yaml`` only by its name and ranker model: same data, sources,
    merge and windows, so the two rankers learn from the same rows."""
    neural = load_pipeline_config(REPO / "configs" / "pipelines" / "neural-100k.yaml")
    ltr = load_pipeline_config(REPO / "configs" / "pipelines" / "ltr-100k.yaml")
    assert isinstance(neural.ranker, NeuralRankStage) and isinstance(ltr.ranker, LambdaRankStage)
    shared = set(CandidateRankerStage.model_fields)
    assert neural.ranker.model_dump(include=shared) == ltr.ranker.model_dump(include=shared)
    skip = {"name", "ranker"}
    assert neural.model_dump(exclude=skip) == ltr.model_dump(exclude=skip)


def test_a_source_whose_training_cannot_start_from_fitted_weights_is_not_continued(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rankstack.sequential.sasrec import SASRec

    monkeypatch.delattr(SASRec, "continued")
    with pytest.raises(ValueError, match="source 'sasrec' cannot be continued"):
        validate_pipeline_config(config_dict(ranker={"kind": "lambdarank"}, sources=[
            {"name": "sasrec", "fit": "once_continued"}]))
