"""The component registry: every kind in one explicit table, names without imports, the config fields agree."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import get_args

import pytest

from rankstack.errors import ConfigError
from rankstack.pipeline import components
from rankstack.pipeline.config import ExplorationStage, IndexStage, MultiTaskRankerStage, RankerStage
from rankstack.reranking.rerank_pipeline import RerankConfig

from .conftest import FAKESEQ

KINDS = ("source", "ranker", "reranker", "policy", "index", "state")


def test_every_kind_is_registered_and_every_entry_resolves() -> None:
    assert tuple(components.REGISTRY) == KINDS
    for kind in KINDS:
        for name in components.names(kind):  # type: ignore[arg-type]
            try:
                target = components.resolve(kind, name)  # type: ignore[arg-type]
                config = components.config_class(kind, name)  # type: ignore[arg-type]
            except ImportError:  # FAISS is optional
                assert kind == "index" and name != "exact"
                continue
            assert callable(target), (kind, name)
            if kind in ("source", "index"):
                assert config is not None and components.build(kind, name) is not None  # type: ignore[arg-type]


def test_the_config_fields_offer_exactly_the_registered_names() -> None:
    assert set(get_args(ExplorationStage.model_fields["policy"].annotation)) == set(components.names("policy"))
    assert set(get_args(IndexStage.model_fields["kind"].annotation)) == set(components.names("index"))
    assert components.config_class("ranker", "sequential") is RankerStage
    assert components.config_class("ranker", "multitask") is MultiTaskRankerStage
    assert set(components.names("ranker")) == {"sequential", "multitask", "lambdarank", "neural"}
    diversity = get_args(get_args(RerankConfig.model_fields["diversity"].annotation)[0])[0]
    methods = {get_args(c.model_fields["method"].annotation)[0] for c in get_args(diversity)}
    assert methods | {"rules"} == set(components.names("reranker"))


def test_listing_names_imports_no_component() -> None:
    code = ("import json, sys; from rankstack.pipeline.components import names, REGISTRY; "
            "[names(k) for k in REGISTRY]; "
            "print(json.dumps(sorted(m for m in ('torch', 'polars', 'scipy', 'redis', 'faiss') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda: components.resolve("source", "bpr"), "unknown model 'bpr'; available: popular, itemknn, ease"),
    (lambda: components.resolve("ranker", "xgboost"), "unknown ranker 'xgboost'; available: sequential, "),
    (lambda: components.names("widget"), "unknown component kind 'widget'; available: source, ranker"),
    (lambda: components.build("index", "exact", {"nope": 1}), "invalid settings for index 'exact': unknown setting"),
    (lambda: components.settings("state", "sqlite"), "state 'sqlite' takes no settings"),
    (lambda: components.open_state("mysql://db"), "unknown state store 'mysql://db'"),
])
def test_unknown_names_and_bad_settings_say_what_exists(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]


def test_build_source_validates_and_instantiates() -> None:
    source = components.build_source("itemknn", {"neighbors": 7})
    assert source.name == "itemknn" and source.config.neighbors == 7  # type: ignore[attr-defined]
    assert components.source_class("itemknn") is type(source)


def test_every_component_lives_below_the_pipeline_or_in_it() -> None:
    """The table is read by the pipeline, serving and the CLI: a target above the pipeline layer (serving,
    experiments, CLI) would be an upward import that no static checker sees behind the strings."""
    stages = ("retrieval", "sequential", "ranking", "reranking", "index", "state", "bandits", "value", "pipeline")
    for kind, table in components.REGISTRY.items():
        for name, (target, config) in table.items():
            if (target, config) == FAKESEQ:  # the tests' stand-in, registered by conftest
                continue
            for spec in (target, config):
                if spec is not None:
                    module, _, attr = spec.partition(":")
                    assert module.split(".")[:2] in (["rankstack", s] for s in stages), (kind, name, spec)
                    assert attr and "." not in attr, (kind, name, spec)


def test_every_registered_policy_says_which_stage_settings_it_takes() -> None:
    from rankstack.pipeline.exploration_stage import POLICY_SETTINGS

    assert set(POLICY_SETTINGS) == set(components.names("policy"))


def test_the_pipeline_is_importable_from_its_package() -> None:
    from rankstack.pipeline import Pipeline
    from rankstack.pipeline.pipeline import Pipeline as Defined

    assert Pipeline is Defined
