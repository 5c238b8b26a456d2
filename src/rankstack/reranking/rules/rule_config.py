"""Typed declarations of business rules (one pydantic model per rule ``type``), validated at load time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = bool | int | float | str
ItemId = int | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Strict):
    """Which items a rule applies to: one test on one item attribute (``at_least`` and ``at_most`` may pair)."""

    attribute: str = Field(min_length=1)
    equals: Scalar | None = None
    one_of: list[Scalar] | None = Field(default=None, min_length=1)
    contains: Scalar | None = None
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Match:
        tests = [t for t in ("equals", "one_of", "contains") if getattr(self, t) is not None]
        ranged = self.at_least is not None or self.at_most is not None
        if len(tests) + ranged != 1:
            raise ValueError("give exactly one of equals, one_of, contains, or at_least/at_most")
        return self

    def describe(self) -> str:
        """Readable form, e.g. ``in_stock == False``."""
        if self.equals is not None:
            return f"{self.attribute} == {self.equals!r}"
        if self.one_of is not None:
            return f"{self.attribute} in {self.one_of!r}"
        if self.contains is not None:
            return f"{self.attribute} contains {self.contains!r}"
        lo = "" if self.at_least is None else f"{self.at_least} <= "
        hi = "" if self.at_most is None else f" <= {self.at_most}"
        return f"{lo}{self.attribute}{hi}"


class _Rule(_Strict):
    name: str = Field(min_length=1)


class FilterRule(_Rule):
    """Remove every candidate that matches (e.g. out of stock)."""

    type: Literal["filter"]
    match: Match


class BlockRule(_Rule):
    """Remove the listed items (external ids when the catalog has an id map, else internal ids)."""

    type: Literal["block"]
    items: list[ItemId] = Field(min_length=1)


class HistoryRule(_Rule):
    """Remove items the user had one of ``events`` with in the last ``within_days`` days (null: ever)."""

    type: Literal["filter_history"]
    events: list[str] = Field(default_factory=lambda: ["conversion"], min_length=1)
    within_days: float | None = Field(default=None, gt=0)


class FrequencyCapRule(_Rule):
    """Remove items shown to the user ``max_count`` times or more in the last ``window_days`` days."""

    type: Literal["frequency_cap"]
    max_count: int = Field(ge=1)
    window_days: float = Field(gt=0)
    events: list[str] = Field(default_factory=lambda: ["impression"], min_length=1)


class BoostRule(_Rule):
    """Add ``amount`` to matching items' relevance (scores are min-max scaled to [0, 1] per row first)."""

    type: Literal["boost"]
    match: Match
    amount: float

    @model_validator(mode="after")
    def _nonzero(self) -> BoostRule:
        if self.amount == 0:
            raise ValueError("amount must be non-zero (negative amounts bury softly)")
        return self


class BuryRule(_Rule):
    """Rank matching items after every non-matching one."""

    type: Literal["bury"]
    match: Match


class PinRule(_Rule):
    """Put ``item`` (or the best matching candidate) at ``slot`` (1-based) if it passes filters and caps."""

    type: Literal["pin"]
    slot: int = Field(ge=1)
    item: ItemId | None = None
    match: Match | None = None

    @model_validator(mode="after")
    def _one_target(self) -> PinRule:
        if (self.item is None) == (self.match is None):
            raise ValueError("give exactly one of 'item' or 'match'")
        return self


class CapRule(_Rule):
    """At most ``max_per_slate`` items per value of ``attribute`` (only ``values`` if given) in the slate."""

    type: Literal["cap"]
    attribute: str = Field(min_length=1)
    max_per_slate: int = Field(ge=1)
    values: list[Scalar] | None = Field(default=None, min_length=1)


class SlotLimitRule(_Rule):
    """Matching items: at most ``max_count`` in the slate, and never in ``forbidden_slots`` (1-based)."""

    type: Literal["slot_limit"]
    match: Match
    max_count: int | None = Field(default=None, ge=0)
    forbidden_slots: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_limit(self) -> SlotLimitRule:
        if self.max_count is None and not self.forbidden_slots:
            raise ValueError("give max_count, forbidden_slots or both")
        return self


class MinShareRule(_Rule):
    """At least ``share`` of the shown items match (e.g. organic), counted on the final slate."""

    type: Literal["min_share"]
    match: Match
    share: float = Field(gt=0.0, le=1.0)


class PacingRule(_Rule):
    """Throttle an advertiser whose spent share of budget runs ahead of its budget curve by > ``tolerance``.

    The curve gives the cumulative share of budget planned at equally spaced times from ``start`` to ``end``
    (default linear: [0, 1]); an advertiser is throttled when spend/budget > curve(t) + tolerance, or when
    spend ≥ budget. Spend comes from ``RerankContext.spend``.
    """

    type: Literal["pacing"]
    attribute: str = Field(default="advertiser", min_length=1)
    budgets: dict[str, Annotated[float, Field(gt=0)]] = Field(min_length=1)
    start: datetime
    end: datetime
    curve: list[Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=lambda: [0.0, 1.0], min_length=2)
    tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _window_and_curve(self) -> PacingRule:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if any(b < a for a, b in zip(self.curve, self.curve[1:], strict=False)):
            raise ValueError("curve must be non-decreasing")
        if self.curve[-1] != 1.0:
            raise ValueError("curve must end at 1.0 (the whole budget)")
        return self


Rule = Annotated[
    FilterRule | BlockRule | HistoryRule | FrequencyCapRule | BoostRule | BuryRule | PinRule | CapRule
    | SlotLimitRule | MinShareRule | PacingRule,
    Field(discriminator="type"),
]

RULE_TYPES = (
    "filter", "block", "filter_history", "frequency_cap", "boost", "bury", "pin", "cap", "slot_limit",
    "min_share", "pacing",
)
