"""The value model: a declarative objective, expected value = Σ_t weight_t · Π_f prediction_f."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rankstack.errors import ConfigError


class ValueTerm(BaseModel):
    """weight × the product of the named per-candidate predictions (e.g. ``[click, cvr, payout]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = 1.0
    factors: tuple[str, ...] = Field(min_length=1)

    def describe(self) -> str:
        """``0.05·click`` style text."""
        return f"{self.weight:g}·" + "·".join(self.factors)


class ValueObjective(BaseModel):
    """V(candidate) = Σ_t w_t · Π_{f ∈ factors_t} p_f(candidate), over calibrated predictions p.

    The default is expected revenue: pCTR · pCVR · payout. Load one from YAML::

        name: revenue_and_clicks
        terms:
          - {weight: 1.0, factors: [click, cvr, payout]}
          - {weight: 0.5, factors: [click]}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "expected_revenue"
    terms: tuple[ValueTerm, ...] = (ValueTerm(factors=("click", "cvr", "payout")),)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ValueObjective:
        """Read and validate an objective from a YAML file."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read value objective: {exc}") from None
        except ValidationError as exc:
            raise ConfigError(f"{path}: invalid value objective: {exc}") from None

    @classmethod
    def revenue_plus_clicks(cls, click_weight: float) -> ValueObjective:
        """pCTR · pCVR · payout + click_weight · pCTR."""
        return cls(name=f"revenue+{click_weight:g}·click", terms=(
            ValueTerm(factors=("click", "cvr", "payout")), ValueTerm(weight=click_weight, factors=("click",)),
        ))

    @property
    def fields(self) -> set[str]:
        """Every prediction the objective reads."""
        return {f for term in self.terms for f in term.factors}

    def describe(self) -> str:
        """``1·click·cvr·payout + 0.5·click``."""
        return " + ".join(term.describe() for term in self.terms)

    def with_weight(self, term: int, weight: float) -> ValueObjective:
        """A copy with term ``term``'s weight replaced."""
        terms = list(self.terms)
        terms[term] = terms[term].model_copy(update={"weight": weight})
        return self.model_copy(update={"terms": tuple(terms)})

    def score(self, predictions: Mapping[str, np.ndarray]) -> np.ndarray:
        """Expected value of every candidate: Σ_t w_t Π_f predictions[f] (arrays of one shape)."""
        missing = sorted(self.fields - set(predictions))
        if missing:
            raise KeyError(f"value objective {self.name!r} needs predictions {missing}; have {sorted(predictions)}")
        total: np.ndarray | None = None
        for term in self.terms:
            part = np.asarray(predictions[term.factors[0]], dtype=np.float64) * term.weight
            for factor in term.factors[1:]:
                part = part * np.asarray(predictions[factor], dtype=np.float64)
            total = part if total is None else total + part
        assert total is not None
        return total
