"""Hyper-parameter search on the validation split (``rankstack tune SPACE.yaml``): the search-space file, one trial
(fit on train, score on validation, each validated epoch reported for early termination), and the chosen setting's
single test run. The search itself runs on Ray Tune (``rankstack.distributed.search``).

A space file::

    dataset: movielens-100k        # a dataset name or your log file
    model: ease                    # a candidate source
    metric: ndcg@10                # maximised on validation
    ks: [10, 20]
    samples: 8                     # trials drawn from the space (a grid entry multiplies them)
    seed: 0
    settings: {}                   # held fixed in every trial
    space:
      l2: {loguniform: [10, 5000]}  # also uniform: [lo, hi], randint: [lo, hi] (both ends included),
                                    # choice: [a, b, ...], grid: [a, b, ...]
    asha: {grace_period: 1, reduction_factor: 3}   # early termination of trials trained in epochs
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.evaluation.early_stopping_train import report_epochs
from rankstack.experiments.offline import evaluate_model
from rankstack.pipeline.components import build_source, names
from rankstack.pipeline.components import settings as validated

KINDS = ("uniform", "loguniform", "randint", "choice", "grid")


class Asha(BaseModel):
    """Asynchronous successive halving over validated epochs: a trial behind the best 1/``reduction_factor`` at a
    rung (``grace_period`` × ``reduction_factor``^i epochs) stops there (Li et al., 2020, "A System for Massively
    Parallel Hyperparameter Tuning", MLSys)."""

    model_config = ConfigDict(extra="forbid")
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3, gt=1)
    max_t: int = Field(default=1000, ge=1)


class TuneSpec(BaseModel):
    """A search: the data, the model, what to maximise on validation, the space and how many trials."""

    model_config = ConfigDict(extra="forbid")
    dataset: str
    model: str
    metric: str = "ndcg@10"
    ks: list[int] = Field(default_factory=lambda: [10, 20])
    samples: int = Field(default=8, ge=1)
    seed: int = 0
    settings: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]]
    asha: Asha | None = Field(default_factory=Asha)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in names("source"):
            raise ValueError(f"unknown model {value!r}; expected one of {list(names('source'))}")
        return value

    @field_validator("space")
    @classmethod
    def _one_kind_each(cls, space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not space:
            raise ValueError("the space is empty: name at least one setting to search")
        for key, entry in space.items():
            if len(entry) != 1 or next(iter(entry)) not in KINDS:
                raise ValueError(f"space.{key}: expected one of {list(KINDS)} (e.g. {{loguniform: [10, 5000]}}), "
                                 f"got {entry!r}")
            kind, value = next(iter(entry.items()))
            if not isinstance(value, list) or not value:
                raise ValueError(f"space.{key}.{kind}: expected a list, got {value!r}")
            if kind in ("uniform", "loguniform", "randint") and (len(value) != 2 or not value[0] < value[1]):
                raise ValueError(f"space.{key}.{kind}: expected [low, high] with low < high, got {value!r}")
            if kind == "loguniform" and value[0] <= 0:
                raise ValueError(f"space.{key}.loguniform: the low end must be > 0, got {value[0]!r}")
        return space

    @model_validator(mode="after")
    def _consistent(self) -> TuneSpec:
        _, _, k = self.metric.partition("@")
        if not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"metric {self.metric!r} must be name@k with k in ks {self.ks}")
        both = sorted(set(self.space) & set(self.settings))
        if both:
            raise ValueError(f"{both} are both fixed (settings) and searched (space)")
        validated("source", self.model, {**self.settings, **self.first_point()})  # unknown settings fail here
        return self

    def first_point(self) -> dict[str, Any]:
        """A point of the space (each range's low end, each list's first value), to check the setting names."""
        out = {}
        for key, entry in self.space.items():
            kind, value = next(iter(entry.items()))
            out[key] = int(value[0]) if kind == "randint" else value[0]
        return out


def load_tune_spec(path: str | Path) -> TuneSpec:
    """Read and check a space file; ConfigError naming the file and the field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the space file: {exc}") from None
    try:
        return TuneSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def run_trial(model: str, params: dict[str, Any], fit: Dataset, held: Dataset, ks: Sequence[int],
              on_epoch: Callable[[int, float, str | None], None] | None = None) -> dict[str, float]:
    """Fit ``model`` with ``params`` on ``fit`` (each validated epoch told to ``on_epoch``) and return its
    full-ranking metrics on ``held``."""
    source = build_source(model, params)
    if on_epoch is None:
        source.fit(fit)
    else:
        with report_epochs(on_epoch):
            source.fit(fit)
    return evaluate_model(source, fit, held, ks)


def chosen_pipeline(spec: TuneSpec, chosen: dict[str, Any], split: str | None) -> dict[str, Any]:
    """A pipeline config (``rankstack train``) retrieving with the chosen setting of the searched source."""
    return {"name": f"tuned-{spec.model}",
            "data": {"name": spec.dataset, "split": split, "eval_on": "test"},
            "sources": [{"name": spec.model, "settings": {**spec.settings, **chosen}, "k": 200}],
            "evaluation": {"ks": list(spec.ks)}}
