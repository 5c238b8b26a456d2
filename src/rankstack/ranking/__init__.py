"""Ranking: the ``Ranker`` protocol, impression tables, features, the multi-task ranker (MMoE over DCN-v2, ESMM),
calibration, plots.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.ranking.calibration import (
        CALIBRATORS,
        CalibrationKind,
        Calibrator,
        IdentityCalibrator,
        IsotonicCalibrator,
        PlattCalibrator,
        TemperatureCalibrator,
        calibrator_from_dict,
        fit_calibrator,
        pool_adjacent_violators,
    )
    from rankstack.ranking.impression_features import (
        EncodedBatch,
        FeatureConfig,
        FeatureEncoder,
        add_source_scores,
        add_user_embedding,
    )
    from rankstack.ranking.impressions import ImpressionSplit, impression_table, temporal_impression_split
    from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker
    from rankstack.ranking.ranker import RankBatch, Ranker
    from rankstack.ranking.ranker_files import load_ranker, save_ranker

_HOME = {
    **dict.fromkeys([
        "CALIBRATORS",
        "CalibrationKind",
        "Calibrator",
        "IdentityCalibrator",
        "IsotonicCalibrator",
        "PlattCalibrator",
        "TemperatureCalibrator",
        "calibrator_from_dict",
        "fit_calibrator",
        "pool_adjacent_violators",
    ], "calibration"),
    **dict.fromkeys([
        "EncodedBatch",
        "FeatureConfig",
        "FeatureEncoder",
        "add_source_scores",
        "add_user_embedding",
    ], "impression_features"),
    **dict.fromkeys(["ImpressionSplit", "impression_table", "temporal_impression_split"], "impressions"),
    **dict.fromkeys(["MultiTaskConfig", "MultiTaskRanker"], "multitask"),
    **dict.fromkeys(["load_ranker", "save_ranker"], "ranker_files"),
    **dict.fromkeys(["RankBatch", "Ranker"], "ranker"),
}

__all__ = [
    "CALIBRATORS",
    "CalibrationKind",
    "Calibrator",
    "EncodedBatch",
    "FeatureConfig",
    "FeatureEncoder",
    "IdentityCalibrator",
    "ImpressionSplit",
    "IsotonicCalibrator",
    "MultiTaskConfig",
    "MultiTaskRanker",
    "PlattCalibrator",
    "RankBatch",
    "Ranker",
    "TemperatureCalibrator",
    "add_source_scores",
    "add_user_embedding",
    "calibrator_from_dict",
    "fit_calibrator",
    "impression_table",
    "load_ranker",
    "pool_adjacent_violators",
    "save_ranker",
    "temporal_impression_split",
]

__getattr__ = lazy_getattr(__name__, _HOME)
