"""Typed, YAML-loadable configuration of the marketplace simulator and its logging policy."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankstack.errors import ConfigError

DEVICES = ("mobile", "desktop", "tablet")
PLACEMENTS = ("home", "search", "product")


class PolicyConfig(BaseModel):
    """The logging policy that chose the logged slates.

    ``uniform``: K distinct eligible items uniformly at random. ``epsilon_greedy``: the top-K by ``score``
    in score order, replaced by a uniform slate with probability ``epsilon``. ``softmax``: K distinct
    items with inclusion probabilities ∝ exp(score / temperature) (capped at 1), placed in random order.
    ``score`` is ``popularity`` (item-level) or ``affinity`` (a noisy copy of the true attraction logit).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["uniform", "epsilon_greedy", "softmax"] = "softmax"
    score: Literal["popularity", "affinity"] = "affinity"
    epsilon: float = Field(default=0.2, ge=0.0, le=1.0)
    temperature: float = Field(default=2.0, gt=0.0)
    score_noise: float = Field(default=0.5, ge=0.0, description="std of the logging model's error on latent factors")


class SimulatorConfig(BaseModel):
    """Sizes, ground-truth parameters and seed of one simulated marketplace (unknown keys rejected).

    Click model (position-based): P(click) = exam(position, placement) · σ(attraction logit) · fatigue^n,
    with exam = (1 + position)^(−position_decay[placement]) and n = earlier impressions of the same item
    to the same user. Conversion: P(conversion | click) = σ(conversion logit); revenue = payout on conversion.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_users: int = Field(default=10_000, ge=1)
    n_items: int = Field(default=500, ge=2)
    n_impressions: int = Field(default=1_000_000, ge=1)
    slate_size: int = Field(default=5, ge=1)
    seed: int = 0
    latent_dim: int = Field(default=8, ge=1)
    n_user_features: int = Field(default=12, ge=0)
    user_feature_noise: float = Field(default=0.1, ge=0.0)
    n_item_features: int = Field(default=16, ge=0)
    item_feature_noise: float = Field(default=0.1, ge=0.0)
    n_segments: int = Field(default=6, ge=1)
    n_regions: int = Field(default=5, ge=1)
    n_categories: int = Field(default=12, ge=1)
    n_advertisers: int = Field(default=50, ge=1)
    user_activity_sigma: float = Field(default=1.0, ge=0.0, description="lognormal spread of how often users come")
    start: datetime = datetime(2026, 1, 1)
    days: float = Field(default=28.0, gt=0.0)
    device_probs: tuple[float, float, float] = (0.6, 0.3, 0.1)
    placement_probs: tuple[float, float, float] = (0.5, 0.3, 0.2)
    main_device_share: float = Field(default=0.8, ge=0.0, le=1.0)
    base_click_logit: float = -3.0
    affinity_scale: float = Field(default=1.5, ge=0.0)
    item_bias_std: float = Field(default=0.5, ge=0.0)
    item_spread: float = Field(default=0.6, ge=0.0, description="item latent spread around its category centre")
    context_effect_std: float = Field(default=0.3, ge=0.0)
    position_decay: dict[str, float] = Field(default_factory=lambda: {"home": 1.0, "search": 0.6, "product": 1.2})
    fatigue: float = Field(default=0.85, gt=0.0, le=1.0)
    drift: float = Field(default=0.0, ge=0.0, description="amplitude of linear item-appeal trends over the run")
    base_conversion_logit: float = -2.0
    conversion_affinity_scale: float = Field(default=1.0, ge=0.0)
    conversion_item_std: float = Field(default=0.3, ge=0.0)
    payout_median: float = Field(default=20.0, gt=0.0)
    payout_sigma: float = Field(default=0.8, ge=0.0)
    payout_elasticity: float = Field(default=0.5, ge=0.0, description="conversion logit falls by this per log payout")
    advertiser_budget: float | None = Field(default=None, gt=0.0, description="total payout an advertiser can spend")
    chunk_requests: int = Field(default=20_000, ge=1, description="requests simulated per vectorised step")
    policy: PolicyConfig = PolicyConfig()

    @model_validator(mode="after")
    def _check(self) -> SimulatorConfig:
        if self.slate_size > self.n_items:
            raise ValueError(f"slate_size {self.slate_size} exceeds n_items {self.n_items}")
        missing = [p for p in PLACEMENTS if p not in self.position_decay]
        if missing:
            raise ValueError(f"position_decay lacks placements {missing}")
        for name, probs in (("device_probs", self.device_probs), ("placement_probs", self.placement_probs)):
            if min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                raise ValueError(f"{name} must be non-negative and sum to 1, got {probs}")
        return self

    @property
    def n_requests(self) -> int:
        """Requests (slates) needed for ``n_impressions``: ⌈impressions / slate_size⌉."""
        return -(-self.n_impressions // self.slate_size)


def load_simulator_config(path: str | Path, **overrides: object) -> SimulatorConfig:
    """Read a YAML simulator config, apply ``overrides`` (None values ignored) and validate it."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read simulator config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SimulatorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid simulator config: {exc}") from None
