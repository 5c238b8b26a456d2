"""Turn impression tables into model inputs: categorical indices, standardised numbers, position-bias index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field

from rankstack.errors import ConfigError
from rankstack.ranking.impressions import LABELS, RESERVED

if TYPE_CHECKING:  # a type only: loading a ranker must not import the evaluator
    from rankstack.evaluation.evaluator import Scorer

_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Boolean, pl.Enum)


class FeatureConfig(BaseModel):
    """Which columns feed the model. ``None`` lists mean: detect from dtypes (strings → categorical,
    integers with ≤ ``max_cardinality`` values → categorical, other numbers → numeric).
    """

    model_config = ConfigDict(extra="forbid")

    categorical: tuple[str, ...] | None = None
    numeric: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    id_features: tuple[str, ...] = Field(default=
        ("item_id",), description="id columns used as categorical features (user ids overfit with few rows per user)"
    )
    max_cardinality: int = Field(default=1_000, ge=2)
    log_scale: bool = Field(default=True, description="signed log1p on non-negative columns whose max exceeds 10")
    bias_features: tuple[str, ...] = Field(
        default=("placement",), description="crossed with position for the bias tower"
    )
    max_position: int = Field(default=20, ge=0)


@dataclass(frozen=True)
class EncodedBatch:
    """Model inputs of N rows: ``cat`` [N, F_c] int64, ``num`` [N, F_n] float32, ``bias`` [N] int64,
    ``payout`` [N] float32 (0 when unknown) and the labels present (float32 [N]).
    """

    cat: torch.Tensor
    num: torch.Tensor
    bias: torch.Tensor
    payout: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.cat.shape[0])

    def take(self, index: torch.Tensor | slice) -> EncodedBatch:
        """The rows at ``index``."""
        return EncodedBatch(self.cat[index], self.num[index], self.bias[index], self.payout[index],
                            {k: v[index] for k, v in self.labels.items()})

    def to(self, device: torch.device | str) -> EncodedBatch:
        """The batch on ``device``."""
        return EncodedBatch(self.cat.to(device), self.num.to(device), self.bias.to(device),
                            self.payout.to(device), {k: v.to(device) for k, v in self.labels.items()})

    def at_position(self, position: int, n_context: int) -> EncodedBatch:
        """The same rows as if shown in slot ``position`` (for ranking, where the slot is not known yet)."""
        return replace(self, bias=position * n_context + self.bias % n_context)


class FeatureEncoder:
    """Fitted on the training impressions: vocabularies (index 0 = unseen), numeric means/stds, bias index."""

    def __init__(self, config: FeatureConfig | None = None, payout_column: str | None = "payout") -> None:
        self.config = config or FeatureConfig()
        self.payout_column = payout_column
        self.categorical_: list[str] = []
        self.numeric_: list[str] = []
        self.vocab_: dict[str, list[str]] = {}
        self.log_: dict[str, bool] = {}
        self.mean_: dict[str, float] = {}
        self.std_: dict[str, float] = {}
        self.bias_features_: list[str] = []
        self.max_position_ = 0

    def _detect(self, table: pl.DataFrame) -> tuple[list[str], list[str]]:
        cfg = self.config
        skip = set(RESERVED) | set(cfg.exclude)
        cat: list[str] = [c for c in cfg.id_features if c in table.columns]
        num: list[str] = ["exposures"] if "exposures" in table.columns else []
        for col, dtype in table.schema.items():
            if col in skip:
                continue
            if isinstance(dtype, _CATEGORICAL_DTYPES) or (
                dtype.is_integer() and table.get_column(col).n_unique() <= cfg.max_cardinality
            ):
                cat.append(col)
            elif dtype.is_numeric():
                num.append(col)
        excluded = set(cfg.exclude)
        return [c for c in cat if c not in excluded], [c for c in num if c not in excluded]

    def fit(self, table: pl.DataFrame) -> FeatureEncoder:
        """Pick the columns and learn vocabularies and numeric statistics from ``table``."""
        cfg = self.config
        auto_cat, auto_num = self._detect(table)
        self.categorical_ = list(cfg.categorical) if cfg.categorical is not None else auto_cat
        self.numeric_ = list(cfg.numeric) if cfg.numeric is not None else auto_num
        self.bias_features_ = [c for c in cfg.bias_features if c in table.columns]
        missing = [c for c in self.categorical_ + self.numeric_ if c not in table.columns]
        if missing:
            raise ConfigError(f"feature column(s) {missing} are not in the impression table {table.columns}")
        for col in self.categorical_ + self.bias_features_:
            values = table.get_column(col).cast(pl.String).drop_nulls().unique().sort()
            self.vocab_[col] = values.to_list()
        for col in self.numeric_:
            x = table.get_column(col).cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
            use_log = bool(cfg.log_scale and x.size and x.min() >= 0 and x.max() > 10)
            x = np.log1p(x) if use_log else x
            self.log_[col] = use_log
            self.mean_[col] = float(x.mean()) if x.size else 0.0
            std = float(x.std()) if x.size else 1.0
            self.std_[col] = std if std > 1e-12 else 1.0
        positions = table.get_column("position").fill_null(0).to_numpy()
        self.max_position_ = int(min(positions.max(initial=0), cfg.max_position))
        return self

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical feature (vocabulary + 1 for unseen values)."""
        return [len(self.vocab_[c]) + 1 for c in self.categorical_]

    @property
    def n_context(self) -> int:
        """Distinct bias-feature combinations (1 when there are no bias features)."""
        return int(np.prod([len(self.vocab_[c]) + 1 for c in self.bias_features_])) if self.bias_features_ else 1

    @property
    def n_bias(self) -> int:
        """Rows of the position-bias table: (max position + 1) × contexts."""
        return (self.max_position_ + 1) * self.n_context

    def _index(self, table: pl.DataFrame, col: str) -> np.ndarray:
        mapping = {v: i + 1 for i, v in enumerate(self.vocab_[col])}
        return (
            table.get_column(col).cast(pl.String)
            .replace_strict(mapping, default=0, return_dtype=pl.Int64).fill_null(0).to_numpy()
        )

    def transform(self, table: pl.DataFrame) -> EncodedBatch:
        """Encode ``table`` (unseen categories → 0, missing numbers → the training mean)."""
        if not self.vocab_ and not self.numeric_ and not self.categorical_:
            raise RuntimeError("FeatureEncoder is not fitted: call fit(train_table) first")
        n = table.height
        cat = np.zeros((n, len(self.categorical_)), dtype=np.int64)
        for j, col in enumerate(self.categorical_):
            cat[:, j] = self._index(table, col)
        num = np.zeros((n, len(self.numeric_)), dtype=np.float32)
        for j, col in enumerate(self.numeric_):
            x = table.get_column(col).cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)
            x = np.log1p(np.maximum(x, 0.0)) if self.log_[col] else x
            num[:, j] = np.nan_to_num((x - self.mean_[col]) / self.std_[col], nan=0.0)
        context = np.zeros(n, dtype=np.int64)
        for col in self.bias_features_:
            context = context * (len(self.vocab_[col]) + 1) + self._index(table, col)
        position = np.clip(table.get_column("position").fill_null(0).to_numpy(), 0, self.max_position_)
        payout = (table.get_column(self.payout_column).cast(pl.Float64).fill_null(0.0).to_numpy()
                  if self.payout_column and self.payout_column in table.columns else np.zeros(n))
        labels = {k: torch.from_numpy(table.get_column(k).cast(pl.Float32).to_numpy().copy())
                  for k in LABELS if k in table.columns}
        return EncodedBatch(torch.from_numpy(cat), torch.from_numpy(num),
                            torch.from_numpy(position.astype(np.int64) * self.n_context + context),
                            torch.from_numpy(payout.astype(np.float32)), labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fitted state."""
        return {"config": self.config.model_dump(mode="json"), "payout_column": self.payout_column,
                "categorical": self.categorical_, "numeric": self.numeric_, "vocab": self.vocab_, "log": self.log_,
                "mean": self.mean_, "std": self.std_, "bias_features": self.bias_features_,
                "max_position": self.max_position_}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict`."""
        enc = cls(FeatureConfig.model_validate(state["config"]), state["payout_column"])
        enc.categorical_, enc.numeric_ = list(state["categorical"]), list(state["numeric"])
        enc.vocab_ = {k: list(v) for k, v in state["vocab"].items()}
        enc.log_, enc.mean_, enc.std_ = dict(state["log"]), dict(state["mean"]), dict(state["std"])
        enc.bias_features_, enc.max_position_ = list(state["bias_features"]), int(state["max_position"])
        return enc


def add_user_embedding(table: pl.DataFrame, embeddings: np.ndarray, prefix: str = "user_emb") -> pl.DataFrame:
    """Append ``embeddings[user_id]`` (e.g. a sequential model's user vector) as numeric columns."""
    emb = np.asarray(embeddings, dtype=np.float64)
    users = table.get_column("user_id").to_numpy()
    if emb.ndim != 2 or users.max(initial=-1) >= len(emb):
        raise ValueError(f"embeddings must be [n_users, dim] covering every user_id, got {emb.shape}")
    return table.with_columns(pl.Series(f"{prefix}_{j}", emb[users, j]) for j in range(emb.shape[1]))


def add_source_scores(table: pl.DataFrame, sources: Mapping[str, Scorer], batch_users: int = 1024) -> pl.DataFrame:
    """Append each candidate source's score of the row's (user, item) as a numeric column ``score_<name>``."""
    users = table.get_column("user_id").to_numpy().astype(np.int64)
    items = table.get_column("item_id").to_numpy().astype(np.int64)
    uniq, inverse = np.unique(users, return_inverse=True)
    columns = []
    for name, source in sources.items():
        out = np.zeros(len(users), dtype=np.float64)
        for start in range(0, len(uniq), batch_users):
            rows = np.flatnonzero((inverse >= start) & (inverse < start + batch_users))
            with torch.no_grad():
                scores = source.score(uniq[start : start + batch_users]).float().cpu().numpy()
            out[rows] = scores[inverse[rows] - start, items[rows]]
        columns.append(pl.Series(f"score_{name}", out))
    return table.with_columns(columns)
