"""The multi-task ranker as a pipeline stage: candidate rows [B, C] → feature table → calibrated predictions.

A candidate row carries what a logged impression carried when the ranker was trained (``impression_table``):
the user's and the item's features, the request context, ``exposures`` and each scoring source's
``score_<name>`` — every row as if shown in the first slot.

Saved as a folder::

    ranker.json, weights.safetensors    the ranker (``rankstack.ranking.ranker_files``)
    stage.json                           context columns, scoring sources, format
    user_features.parquet                row i = internal user i (features only, renamed as in training)
    item_features.parquet                row i = internal item i
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rankstack.data.dataset import Dataset
from rankstack.io import atomic_write, write_text_atomic
from rankstack.ranking.impressions import KEY, LABELS, RESERVED
from rankstack.ranking.multitask import MultiTaskRanker
from rankstack.ranking.ranker import Exposures, RankBatch
from rankstack.ranking.ranker_files import load_ranker, save_ranker
from rankstack.retrieval.source import CandidateSource

FORMAT = 1
STAGE_FILE = "stage.json"


def prediction_names(objectives: Sequence[str]) -> set[str]:
    """The calibrated predictions a ranker with ``objectives`` returns: payout, click, conversion, cvr, revenue."""
    names = {"payout"} | ({"click"} if "click" in objectives else set())
    if "conversion" in objectives:
        names |= {"conversion", "cvr"} if "click" in objectives else {"conversion"}
    return names | ({"revenue"} if "revenue" in objectives else set())


def dense_features(dataset: Dataset, context: Sequence[str]) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """User and item feature tables with row i = internal id i, columns renamed as ``impression_table`` does."""
    taken = {*KEY, "timestamp", "user_id", "propensity", *context, *LABELS, *RESERVED}
    out: list[pl.DataFrame | None] = []
    for key, features, prefix, n in (("user_id", dataset.user_features, "user_", dataset.n_users),
                                     ("item_id", dataset.item_features, "item_", dataset.n_items)):
        if features is None:
            out.append(None)
            continue
        renames = {c: prefix + c for c in features.columns if c != key and c in taken}
        features = features.rename(renames)
        taken |= set(features.columns)
        ids = pl.DataFrame({key: np.arange(n, dtype=np.int64)}).with_columns(pl.col(key).cast(features.schema[key]))
        out.append(ids.join(features, on=key, how="left", maintain_order="left").drop(key))
    return out[0], out[1]


def _gather(frame: pl.DataFrame | None, ids: np.ndarray) -> pl.DataFrame | None:
    """Rows ``ids`` of a dense feature table; -1 (unknown) → a row of nulls."""
    if frame is None:
        return None
    padded = pl.concat([frame, frame.clear(1)])
    return padded[np.where(ids >= 0, ids, frame.height)]


@dataclass
class MultiTaskStage:
    """A fitted multi-task ranker with the feature tables and the scoring sources its rows need; a ``Ranker``
    whose objectives are its calibrated predictions."""

    ranker: MultiTaskRanker
    user_features: pl.DataFrame | None
    item_features: pl.DataFrame | None
    context: list[str]
    score_sources: list[str]

    name = "multitask"
    needs_history = False

    @property
    def predictions(self) -> set[str]:
        """Names of the per-candidate predictions this stage produces."""
        return prediction_names(self.ranker.config.objectives)

    @property
    def objectives(self) -> tuple[str, ...]:
        """The predictions, sorted: the ``Ranker`` protocol's objectives."""
        return tuple(sorted(self.predictions))

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        """Calibrated predictions [B, C] per objective; exposures are the row's impressions in the state store."""
        return self.predict(batch.user_ids, batch.item_ids, batch.contexts,
                            _impressions(batch.exposures, batch.item_ids), batch.sources)

    def keep_states(self, capacity: int) -> None:
        """Nothing to keep: the ranker has no per-user state."""

    def warm(self, histories: Sequence[np.ndarray]) -> int:
        """Nothing to warm."""
        return 0

    def save(self, root: Path, sources: Mapping[str, CandidateSource]) -> str:
        """Write the stage into ``root/ranker``."""
        save_stage(self, root / "ranker")
        return "ranker"

    @classmethod
    def load(cls, root: Path, rel: str, sources: Mapping[str, CandidateSource],
             read_source: Callable[[Path], CandidateSource]) -> MultiTaskStage:
        """The stage :meth:`save` wrote at ``root/rel``."""
        return load_stage(root / rel)

    def rows(self, user_ids: np.ndarray, item_ids: np.ndarray, contexts: Sequence[Mapping[str, Any]],
             exposures: np.ndarray, sources: Mapping[str, CandidateSource]) -> pl.DataFrame:
        """The feature table of candidates [B, C] (valid ones only, row-major), as the ranker was trained on."""
        rows, cols = np.nonzero(item_ids >= 0)
        users, items = user_ids[rows], item_ids[rows, cols]
        enc = self.ranker.encoder_
        numeric = set(enc.numeric_) if enc is not None else set()
        columns: dict[str, Any] = {"user_id": users, "item_id": items, "position": np.zeros(len(rows), np.int64),
                                   "exposures": exposures[rows, cols].astype(np.float64)}
        for name in self.context:
            values = [contexts[r].get(name) for r in rows.tolist()]
            if name in numeric:
                columns[name] = pl.Series(name, [None if v is None else float(v) for v in values], pl.Float64)
            else:
                columns[name] = pl.Series(name, [None if v is None else _text(v) for v in values], pl.String)
        for name in self.score_sources:
            columns[f"score_{name}"] = _source_scores(sources.get(name), user_ids, item_ids)[rows, cols]
        frame = pl.DataFrame(columns)
        parts = [p for p in (_gather(self.user_features, users), _gather(self.item_features, items)) if p is not None]
        return pl.concat([frame, *parts], how="horizontal") if parts else frame

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray, contexts: Sequence[Mapping[str, Any]],
                exposures: np.ndarray, sources: Mapping[str, CandidateSource]) -> dict[str, np.ndarray]:
        """Calibrated predictions [B, C] per name (click, conversion, cvr, revenue, payout); NaN on pads."""
        valid = item_ids >= 0
        out = {name: np.full(item_ids.shape, np.nan) for name in self.predictions}
        if not valid.any():
            return out
        scores = self.ranker.score(self.rows(user_ids, item_ids, contexts, exposures, sources))
        for name, values in scores.items():
            if name in out:
                out[name][valid] = values
        return out


def _impressions(exposures: Exposures | None, item_ids: np.ndarray) -> np.ndarray:
    """Each candidate's count of the row's logged impressions [B, C] (zeros without a state store)."""
    out = np.zeros(item_ids.shape)
    if exposures is not None:
        for row in range(len(item_ids)):
            counts = exposures.counts(row, since=0.0, events=("impression",))
            if counts:
                out[row] = [counts.get(int(i), 0) for i in item_ids[row]]
    return out


def _text(value: Any) -> str:
    """A context value as the encoder's string cast of a logged column writes it (booleans: true/false)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _source_scores(source: CandidateSource | None, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """``source.score`` of each (user, candidate) [B, C]; NaN (→ the training mean) for unknown users or a failure."""
    out = np.full(item_ids.shape, np.nan)
    known = np.flatnonzero(user_ids >= 0)
    if source is None or len(known) == 0:
        return out
    try:
        with torch.no_grad():
            scores = source.score(user_ids[known]).float().cpu().numpy().astype(np.float64)
    except Exception:  # a failing scorer is a missing feature, not a failed request
        return out
    cands = item_ids[known]
    out[known] = np.where(cands >= 0, np.take_along_axis(scores, np.maximum(cands, 0), axis=1), np.nan)
    return out


def save_stage(stage: MultiTaskStage, folder: Path) -> Path:
    """Write the stage into ``folder`` (safetensors + JSON + Parquet; nothing pickled)."""
    save_ranker(stage.ranker, folder)
    for name, frame in (("user_features", stage.user_features), ("item_features", stage.item_features)):
        if frame is not None:
            with atomic_write(folder / f"{name}.parquet") as tmp:
                frame.write_parquet(tmp)
    meta = {"format": FORMAT, "context": stage.context, "score_sources": stage.score_sources}
    write_text_atomic(folder / STAGE_FILE, json.dumps(meta, indent=1) + "\n")
    return folder


def load_stage(folder: Path, device: str | None = None) -> MultiTaskStage:
    """Read a stage written by :func:`save_stage` (``ValueError`` naming the file when it is not one)."""
    meta = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{folder / STAGE_FILE}: unsupported multi-task stage format {meta!r:.80}")

    def frame(name: str) -> pl.DataFrame | None:
        path = folder / f"{name}.parquet"
        return pl.read_parquet(path) if path.is_file() else None

    return MultiTaskStage(load_ranker(folder, device=device), frame("user_features"), frame("item_features"),
                          [str(c) for c in meta["context"]], [str(s) for s in meta["score_sources"]])
