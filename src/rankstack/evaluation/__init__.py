"""Evaluation: ranking metrics (pure functions), the full-ranking evaluator and recs-file evaluation.

The names below are imported on first use (module ``__getattr__``), so importing one light submodule
(``rankstack.evaluation.metrics``) does not pull in torch through the evaluator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.evaluation.evaluator import Evaluator, Scorer, default_batch_size, resolve_device
    from rankstack.evaluation.metrics import (
        ACCURACY_METRICS,
        MetricAccumulator,
        average_precision_at_k,
        coverage_at_k,
        hit_rate_at_k,
        hits_matrix,
        intra_list_diversity_at_k,
        item_popularity,
        mrr_at_k,
        ndcg_at_k,
        novelty_at_k,
        parse_ks,
        precision_at_k,
        recall_at_k,
        summarize,
    )
    from rankstack.evaluation.recs import evaluate_rec_files

_HOME = {
    **dict.fromkeys(["Evaluator", "Scorer", "default_batch_size", "resolve_device"], "evaluator"),
    **dict.fromkeys([
        "ACCURACY_METRICS", "MetricAccumulator", "average_precision_at_k", "coverage_at_k", "hit_rate_at_k",
        "hits_matrix", "intra_list_diversity_at_k", "item_popularity", "mrr_at_k", "ndcg_at_k", "novelty_at_k",
        "parse_ks", "precision_at_k", "recall_at_k", "summarize",
    ], "metrics"),
    "evaluate_rec_files": "recs",
}

__all__ = [
    "ACCURACY_METRICS",
    "Evaluator",
    "MetricAccumulator",
    "Scorer",
    "average_precision_at_k",
    "coverage_at_k",
    "default_batch_size",
    "evaluate_rec_files",
    "hit_rate_at_k",
    "hits_matrix",
    "intra_list_diversity_at_k",
    "item_popularity",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty_at_k",
    "parse_ks",
    "precision_at_k",
    "recall_at_k",
    "resolve_device",
    "summarize",
]


__getattr__ = lazy_getattr(__name__, _HOME)
