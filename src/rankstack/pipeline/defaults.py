"""The default pipeline on the bundled ml-latest-small, as plain data (mirrored by ``configs/pipelines/default.yaml``;
validated by ``rankstack.pipeline.config.default_config``)."""

from __future__ import annotations

from typing import Any

DEFAULT: dict[str, Any] = {
    "name": "default",
    "data": {"name": "ml-latest-small", "split": "leave_one_out", "eval_on": "test"},
    "sources": [
        {"name": "popular", "k": 100, "quota": 20, "weight": 0.3},
        {"name": "itemknn", "settings": {"neighbors": 100}, "k": 200, "quota": 40, "weight": 0.5},
        {"name": "ease", "k": 200, "quota": 100},
    ],
    "merge": {"k": 200},
    "ranker": {"kind": "lambdarank", "label_events": 10, "label_windows": 3, "validation_events": 1},
    "exploration": {"policy": "greedy"},
    "deadlines_ms": {"retrieval": 200, "ranker": 100, "rerank": 50},
    "evaluation": {"ks": [10, 20], "funnel_ks": [50, 100, 200]},
}

