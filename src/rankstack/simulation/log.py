"""A simulated log: per-impression arrays, and their canonical event / truth / feature tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

import rankstack
from rankstack.data.dataset import Dataset
from rankstack.data.schema import EventSchema
from rankstack.io import atomic_write, write_text_atomic
from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS, SimulatorConfig
from rankstack.simulation.world import Marketplace

SIM_CONTEXT = ("device", "placement", "hour")
SIM_SCHEMA = EventSchema(context_columns=SIM_CONTEXT)
TRUTH_FILE = "truth.parquet"
META_FILE = "simulation.json"


@dataclass(frozen=True)
class SimulationLog:
    """One array entry per impression, in time order (request, then slot); ids are simulator indices."""

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "request", "user", "item", "position", "propensity", "t_frac", "hour", "device", "placement",
        "exposures", "p_click", "p_conversion", "click", "conversion", "revenue", "click_delay",
        "conversion_delay",
    )

    config: SimulatorConfig
    world: Marketplace = field(repr=False)
    spend: np.ndarray = field(repr=False)
    request: np.ndarray = field(repr=False)
    user: np.ndarray = field(repr=False)
    item: np.ndarray = field(repr=False)
    position: np.ndarray = field(repr=False)
    propensity: np.ndarray = field(repr=False)
    t_frac: np.ndarray = field(repr=False)
    hour: np.ndarray = field(repr=False)
    device: np.ndarray = field(repr=False)
    placement: np.ndarray = field(repr=False)
    exposures: np.ndarray = field(repr=False)
    p_click: np.ndarray = field(repr=False)
    p_conversion: np.ndarray = field(repr=False)
    click: np.ndarray = field(repr=False)
    conversion: np.ndarray = field(repr=False)
    revenue: np.ndarray = field(repr=False)
    click_delay: np.ndarray = field(repr=False)
    conversion_delay: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.item)

    def _timestamps(self, delay_s: np.ndarray | None = None) -> np.ndarray:
        """Datetime64[us] of each impression, plus ``delay_s`` seconds."""
        start = self.config.start
        if start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        seconds = self.t_frac * self.config.days * 86_400.0 + (0.0 if delay_s is None else delay_s)
        return np.datetime64(start, "us") + np.round(seconds * 1e6).astype("timedelta64[us]")

    def _base(self) -> pl.DataFrame:
        width = len(str(max(int(self.request.max(initial=0)), 0)))
        return pl.DataFrame({
            "user_id": self.user, "item_id": self.item, "request": self.request, "position": self.position,
            "propensity": self.propensity, "device": self.device, "placement": self.placement,
            "hour": self.hour,
        }).with_columns(
            pl.format("r{}", pl.col("request").cast(pl.String).str.zfill(width)).alias("request_id"),
            pl.col("device").replace_strict(dict(enumerate(DEVICES)), return_dtype=pl.String),
            pl.col("placement").replace_strict(dict(enumerate(PLACEMENTS)), return_dtype=pl.String),
        ).drop("request")

    def events(self) -> pl.DataFrame:
        """Canonical events: an impression per slot, a click per clicked slot, a conversion (value = payout)."""
        base = self._base()
        columns = ["user_id", "item_id", "timestamp", "event", "value", "request_id", "position", "propensity",
                   *SIM_CONTEXT]

        def part(event: str, mask: np.ndarray | None, delay: np.ndarray | None, value: np.ndarray | None
                 ) -> pl.DataFrame:
            frame = base.with_columns(
                pl.Series("timestamp", self._timestamps(delay)),
                pl.lit(event).alias("event"),
                pl.Series("value", value, dtype=pl.Float64) if value is not None
                else pl.lit(None, dtype=pl.Float64).alias("value"),
            )
            return (frame if mask is None else frame.filter(pl.Series(mask))).select(columns)

        frames = [
            part("impression", None, None, None),
            part("click", self.click, self.click_delay, None),
            part("conversion", self.conversion, self.click_delay + self.conversion_delay, self.revenue),
        ]
        return pl.concat(frames).sort("timestamp", maintain_order=True)

    def truth(self) -> pl.DataFrame:
        """True probabilities of every impression, keyed by ``request_id`` + ``position``."""
        return self._base().select(
            "request_id", "position", "user_id", "item_id",
            pl.Series("p_click", self.p_click),
            pl.Series("p_conversion_given_click", self.p_conversion),
            pl.Series("p_conversion", self.p_click * self.p_conversion),
            pl.Series("expected_revenue", self.p_click * self.p_conversion * self.world.item_payout[self.item]),
            pl.Series("exposures", self.exposures),
        )

    def user_features(self) -> pl.DataFrame:
        """Observable user features: noisy projections of the latent vector, segment and region."""
        w = self.world
        cols: dict[str, Any] = {"user_id": np.arange(w.n_users)}
        cols["segment"] = [f"s{s}" for s in w.user_segment]
        cols["region"] = [f"g{r}" for r in w.user_region]
        for j in range(w.user_features.shape[1]):
            cols[f"uf_{j}"] = w.user_features[:, j]
        return pl.DataFrame(cols)

    def item_features(self) -> pl.DataFrame:
        """Observable item features: category, advertiser, payout per conversion and noisy content descriptors."""
        w = self.world
        cols: dict[str, Any] = {
            "item_id": np.arange(w.n_items),
            "category": [f"c{c}" for c in w.item_category],
            "advertiser": [f"a{a}" for a in w.item_advertiser],
            "payout": w.item_payout,
        }
        for j in range(w.item_features.shape[1]):
            cols[f"if_{j}"] = w.item_features[:, j]
        return pl.DataFrame(cols)

    def summary(self) -> dict[str, float]:
        """Counts and rates of the log: impressions, CTR, CVR (per click), revenue per 1,000 impressions."""
        n, clicks, conv = len(self), int(self.click.sum()), int(self.conversion.sum())
        return {
            "impressions": n, "requests": len(np.unique(self.request)), "clicks": clicks,
            "conversions": conv, "ctr": clicks / max(n, 1), "cvr": conv / max(clicks, 1),
            "revenue": float(self.revenue.sum()), "revenue_per_mille": 1000 * float(self.revenue.sum()) / max(n, 1),
            "mean_p_click": float(self.p_click.mean()) if n else 0.0,
        }

    def to_dataset(self, name: str = "simulated") -> Dataset:
        """Validated canonical dataset with user and item feature tables (context: device, placement, hour)."""
        return Dataset.from_events(
            self.events(), name=name, schema=SIM_SCHEMA,
            item_features=self.item_features(), user_features=self.user_features(),
        )

    def save(self, directory: str | Path, name: str | None = None) -> Dataset:
        """Write the dataset (``events.parquet`` …), ``truth.parquet`` and ``simulation.json``; returns the dataset."""
        out = Path(directory)
        dataset = self.to_dataset(name or out.name or "simulated")
        dataset.save(out)
        with atomic_write(out / TRUTH_FILE) as tmp:
            self.truth().write_parquet(tmp)
        meta = {"config": self.config.model_dump(mode="json"), "summary": self.summary(),
                "rankstack": rankstack.__version__}
        write_text_atomic(out / META_FILE, json.dumps(meta, indent=2) + "\n")
        return dataset


def load_simulation_config(directory: str | Path) -> SimulatorConfig | None:
    """The simulator config saved next to a simulated dataset, or None if the folder holds none."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return None
    return SimulatorConfig.model_validate(json.loads(path.read_text(encoding="utf-8"))["config"])
