"""The runtime pipeline: its config, the recommend code path and its artifacts (what serving loads).

``from rankstack.pipeline import Pipeline`` imports the pipeline on first use (``rankstack.lazy_exports``), so
reading the config module alone does not load the stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.pipeline.config import PipelineConfig, load_pipeline_config
    from rankstack.pipeline.pipeline import Pipeline

__all__ = ["Pipeline", "PipelineConfig", "load_pipeline_config"]

__getattr__ = lazy_getattr(__name__, {"Pipeline": "pipeline", "PipelineConfig": "config",
                                      "load_pipeline_config": "config"})
