"""How ``rankstack serve`` turns an artifact path into a ``Recommender``: the pipeline, or a named loader."""

from __future__ import annotations

import importlib
from typing import Any, cast

from rankstack.errors import ConfigError
from rankstack.serving.model_slot import RecommenderLoader

DEFAULT_LOADER = "rankstack.pipeline.pipeline:Pipeline.load"


def resolve_loader(spec: str = DEFAULT_LOADER) -> RecommenderLoader:
    """``"package.module:attr.attr"`` → that callable (it must take the artifact path and return a Recommender)."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"loader {spec!r}: expected MODULE:CALLABLE, e.g. {DEFAULT_LOADER}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"loader {spec!r} cannot be imported: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"loader {spec!r} is not callable")
    return cast(RecommenderLoader, target)

