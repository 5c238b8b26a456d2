"""Rules compiled against a catalog: filters, score adjustments and slate constraints, with explanations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import polars as pl

from rankstack.candidates import PAD_ITEM, Candidates, compact, normalize_relevance, sort_by_score
from rankstack.errors import ConfigError
from rankstack.reranking.catalog import ItemCatalog
from rankstack.reranking.reranker import Action, Explanation, RerankContext
from rankstack.reranking.rules import rule_config as rc
from rankstack.reranking.rules.slate import CapSpec, Note, ShareSpec, SlateSpec, SlotSpec, compose

DAY_S = 86_400.0
HitFn = Callable[[np.ndarray, RerankContext, np.ndarray], tuple[np.ndarray, Callable[[int], str]]]


@dataclass(frozen=True)
class _Filter:
    name: str
    action: Action
    hits: HitFn


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def pacing_target(rule: rc.PacingRule, now: float) -> float:
    """Planned cumulative share of budget at ``now``: the curve interpolated linearly over [start, end]."""
    start, end = _epoch(rule.start), _epoch(rule.end)
    frac = min(max((now - start) / (end - start), 0.0), 1.0)
    grid = np.linspace(0.0, 1.0, len(rule.curve))
    return float(np.interp(frac, grid, rule.curve))


class RuleEngine:
    """A validated rule list compiled over an :class:`ItemCatalog`; itself a ``Reranker``.

    ``rerank`` runs: filters (in declaration order; the first rule that removes an item is credited) →
    per-row min-max scaling and boosts → sort by score → bury → slate (pins, caps, slot limits, shares).
    """

    def __init__(self, rules: Sequence[rc.Rule], catalog: ItemCatalog, *, source: str = "<rules>") -> None:
        self.rules = list(rules)
        self.catalog = catalog
        self.source = source
        self.filters: list[_Filter] = []
        self.boosts: list[tuple[str, np.ndarray, float, str]] = []
        self.buried = np.zeros(catalog.n_items, dtype=bool)
        self.bury_rules: list[tuple[str, np.ndarray]] = []
        self.pins: list[tuple[rc.PinRule, int, np.ndarray | None]] = []
        caps: list[CapSpec] = []
        slots: list[SlotSpec] = []
        shares: list[ShareSpec] = []
        for index, rule in enumerate(self.rules):
            self._compile(index, rule, caps, slots, shares)
        self.slate_spec = SlateSpec(caps, slots, shares)

    def _error(self, index: int, rule: rc.Rule, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: rules[{index}] '{rule.name}' ({rule.type}), field '{field}': {message}")

    def _mask(self, index: int, rule: rc.Rule, match: rc.Match, field: str = "match") -> np.ndarray:
        try:
            return self.catalog.mask(match)
        except ValueError as exc:
            raise self._error(index, rule, f"{field}.attribute", str(exc)) from None

    def _compile(self, i: int, rule: rc.Rule, caps: list[CapSpec], slots: list[SlotSpec],
                 shares: list[ShareSpec]) -> None:
        if isinstance(rule, rc.FilterRule | rc.BlockRule):
            if isinstance(rule, rc.FilterRule):
                mask, reason = self._mask(i, rule, rule.match), f"matches {rule.match.describe()}"
            else:
                mask, reason = np.zeros(self.catalog.n_items, dtype=bool), "blocked item"
                ids = self.catalog.to_internal(rule.items)
                mask[ids[ids >= 0]] = True
            self.filters.append(_Filter(rule.name, "removed", _static_hits(mask, reason)))
        elif isinstance(rule, rc.HistoryRule | rc.FrequencyCapRule):
            self.filters.append(_Filter(rule.name, "removed", _history_hits(rule)))
        elif isinstance(rule, rc.PacingRule):
            self.filters.append(_Filter(rule.name, "throttled", self._pacing_hits(i, rule)))
        elif isinstance(rule, rc.BoostRule):
            self.boosts.append((rule.name, self._mask(i, rule, rule.match), rule.amount, rule.match.describe()))
        elif isinstance(rule, rc.BuryRule):
            mask = self._mask(i, rule, rule.match)
            self.buried |= mask
            self.bury_rules.append((rule.name, mask))
        elif isinstance(rule, rc.PinRule):
            target = None if rule.match is None else self._mask(i, rule, rule.match)
            item = -1 if rule.item is None else int(self.catalog.to_internal([rule.item])[0])
            if rule.item is not None and item < 0:
                raise self._error(i, rule, "item", f"item {rule.item!r} is not in the catalog")
            self.pins.append((rule, item, target))
        elif isinstance(rule, rc.CapRule):
            try:
                indptr, codes, names = self.catalog.groups(rule.attribute)
            except ValueError as exc:
                raise self._error(i, rule, "attribute", str(exc)) from None
            wanted = None if rule.values is None else {str(v) for v in rule.values}
            applies = np.array([wanted is None or n in wanted for n in names], dtype=bool)
            caps.append(CapSpec(rule.name, rule.attribute, rule.max_per_slate, indptr, codes, names, applies))
        elif isinstance(rule, rc.SlotLimitRule):
            mask = self._mask(i, rule, rule.match)
            slots.append(SlotSpec(rule.name, mask, rule.max_count, frozenset(rule.forbidden_slots),
                                  rule.match.describe()))
        else:
            shares.append(ShareSpec(rule.name, self._mask(i, rule, rule.match), rule.share, rule.match.describe()))

    def _pacing_hits(self, i: int, rule: rc.PacingRule) -> HitFn:
        try:
            indptr, codes, names = self.catalog.groups(rule.attribute)
        except ValueError as exc:
            raise self._error(i, rule, "attribute", str(exc)) from None
        if np.any(np.diff(indptr) > 1) or isinstance(self.catalog.column(rule.attribute).dtype, pl.List):
            raise self._error(i, rule, "attribute", f"{rule.attribute!r} must hold one value per item")
        item_code = np.full(self.catalog.n_items, -1, dtype=np.int64)
        item_code[np.diff(indptr) == 1] = codes
        index = {n: c for c, n in enumerate(names)}

        def hits(ids: np.ndarray, context: RerankContext, rows: np.ndarray) -> tuple[np.ndarray, Callable[[int], str]]:
            if context.spend is None:
                raise ValueError(f"rule {rule.name!r} (pacing) needs RerankContext.spend")
            target = pacing_target(rule, context.now)
            reasons: dict[int, str] = {}
            for adv, budget in rule.budgets.items():
                spent = float(context.spend.get(adv, 0.0)) / budget
                if adv in index and (spent >= 1.0 or spent > target + rule.tolerance):
                    reasons[index[adv]] = f"{rule.attribute} {adv} spent {spent:.1%} of budget, plan {target:.1%}"
            throttled = np.zeros(len(names) + 1, dtype=bool)
            throttled[list(reasons)] = True
            hit = (ids >= 0) & throttled[item_code[np.where(ids >= 0, ids, 0)]]
            return hit, lambda item: reasons[int(item_code[item])]

        return hits

    def filter(self, item_ids: np.ndarray, context: RerankContext, rows: np.ndarray | None = None) -> np.ndarray:
        """``item_ids`` [b, N] with every filtered item set to -1; ``rows`` maps to context rows (default 0…b−1)."""
        rows = np.arange(item_ids.shape[0]) if rows is None else rows
        ids = np.array(item_ids, dtype=np.int64, copy=True)
        for f in self.filters:
            hit, reason = f.hits(ids, context, rows)
            if context.trace is not None:
                for b, n in np.argwhere(hit):
                    self._note(context, int(rows[b]), Note(int(ids[b, n]), f.name, f.action, reason(int(ids[b, n])),
                                                            int(n) + 1, None))
            ids[hit] = PAD_ITEM
        return ids

    def adjust(self, item_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scores plus each boost rule's ``amount`` where the item matches (shown ones are noted by ``slates``)."""
        out = np.array(scores, dtype=np.float64, copy=True)
        safe = np.where(item_ids >= 0, item_ids, 0)
        for _, mask, amount, _ in self.boosts:
            out += amount * (mask[safe] & (item_ids >= 0))
        return out

    def arrange(self, ranked: np.ndarray, k: int, context: RerankContext, row: int,
                incoming: np.ndarray | None = None) -> list[int]:
        """The slate of ``k`` for one row from its ranked valid item ids (bury, pins, constraints applied).

        ``from_rank`` in the notes is the item's position in ``incoming`` (the request's candidate row) when
        given, else in ``ranked``.
        """
        def first_rank(item: int, fallback: int | None) -> int | None:
            if incoming is None:
                return fallback
            where = np.flatnonzero(incoming == item)
            return int(where[0]) + 1 if where.size else None

        if self.bury_rules:
            down = self.buried[ranked]
            if down.any() and not down[np.argmax(down):].all():
                for r, item in enumerate(ranked):
                    if down[r]:
                        by = next(n for n, m in self.bury_rules if m[item])
                        self._note(context, row, Note(int(item), by, "buried", "ranked after unburied items",
                                                      first_rank(int(item), r + 1), None))
                ranked = np.concatenate([ranked[~down], ranked[down]])
        pins: list[tuple[str, int, int]] = []
        quiet = replace(context, trace=None) if self.pins else context
        used = {p for _, p, _ in self.pins if p >= 0}
        for rule, item, mask in self.pins:
            if mask is not None:
                hits = ranked[mask[ranked]]
                item = next((int(x) for x in hits if int(x) not in used), -1)
                used.add(item)
            elif item not in ranked and self.filter(np.array([[item]]), quiet, np.array([row]))[0, 0] < 0:
                self._note(context, row, Note(item, rule.name, "rejected", "pinned item is filtered out", None, None))
                continue
            if item >= 0:
                pins.append((rule.name, rule.slot, item))
        slate, notes = compose(ranked, k, self.slate_spec, pins)
        for note in notes:
            self._note(context, row, replace(note, from_rank=first_rank(note.item, note.from_rank)))
        return slate

    def _note(self, context: RerankContext, row: int, note: Note) -> None:
        if context.trace is not None:
            context.trace.add(Explanation(row, int(context.user_ids[row]), note.item, note.rule,
                                          note.action, note.reason, note.from_rank, note.to_rank))

    def rerank(self, candidates: Candidates, k: int, context: RerankContext) -> Candidates:
        """Rules only: filter, scale + boost, sort by score, then bury/pin/constrain into ``k`` slots."""
        context.check(candidates)
        incoming, scores = compact(candidates.item_ids, candidates.scores)
        ids = self.filter(incoming, context)
        scores = self.adjust(ids, normalize_relevance(ids, scores, "minmax"))
        ids, scores = sort_by_score(ids, scores)
        return self.slates(ids, scores, k, context, source=f"{candidates.source}+rules", incoming=incoming)

    def arranges_nothing(self, context: RerankContext) -> bool:
        """No bury, pin or slate rule (and no boost to explain): each slate is the head of its ranked row."""
        spec = self.slate_spec
        quiet = context.trace is None or not self.boosts
        return quiet and not (self.bury_rules or self.pins or spec.caps or spec.slots or spec.shares)

    def slates(self, ranked: np.ndarray, scores: np.ndarray, k: int, context: RerankContext, source: str,
               incoming: np.ndarray | None = None, *, distinct: bool | None = None) -> Candidates:
        """Slates [batch, k] of ranked (already filtered) ids; scores follow their items.

        Each row's valid head when no rule reorders it (and no item repeats), else :meth:`slates_by_row`.
        ``incoming`` [batch, N] are the request's candidates, for ranks in explanations; ``distinct``: no row of
        ``ranked`` repeats an item id (None: check).
        """
        distinct = not has_duplicates(ranked) if distinct is None else distinct
        if distinct and self.arranges_nothing(context):
            return _heads(ranked, scores, k, source)
        return self.slates_by_row(ranked, scores, k, context, source, incoming)

    def slates_by_row(self, ranked: np.ndarray, scores: np.ndarray, k: int, context: RerankContext, source: str,
                      incoming: np.ndarray | None = None) -> Candidates:
        """:meth:`slates` one row at a time through :meth:`arrange` (the general path)."""
        out = np.full((ranked.shape[0], k), PAD_ITEM, dtype=np.int64)
        out_scores = np.full((ranked.shape[0], k), -np.inf)
        for row in range(ranked.shape[0]):
            valid = ranked[row] >= 0
            items, item_scores = ranked[row][valid], scores[row][valid]
            row_in = None if incoming is None else incoming[row]
            slate = np.asarray(self.arrange(items, k, context, row, row_in), dtype=np.int64)
            out[row], out_scores[row] = slate, _scores_of(slate, items, item_scores)
            if context.trace is not None:
                for slot, item in enumerate(slate.tolist(), start=1):
                    for name, mask, amount, label in self.boosts:
                        if item >= 0 and mask[item]:
                            self._note(context, row, Note(item, name, "boosted", f"{label}: relevance {amount:+g}",
                                                          None, slot))
        return Candidates(out, out_scores, source=source)


def _heads(ranked: np.ndarray, scores: np.ndarray, k: int, source: str) -> Candidates:
    """The first ``k`` valid ids of each row (distinct ids) with their scores; -1 and -inf pad."""
    ids, vals = compact(ranked, scores)
    if ids.shape[1] < k:
        ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=PAD_ITEM)
        vals = np.pad(vals, ((0, 0), (0, k - vals.shape[1])), constant_values=-np.inf)
    head = ids[:, :k].astype(np.int64, copy=False)
    return Candidates(head, np.where(head >= 0, vals[:, :k], -np.inf), source=source)


def has_duplicates(ids: np.ndarray) -> bool:
    """Whether any row lists an item id (≥ 0) more than once."""
    ordered = np.sort(ids, axis=1)
    return bool(np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)))


def _scores_of(slate: np.ndarray, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each slate item's score in (items, scores); the top score for items not there; -inf for padding."""
    if items.size == 0:
        return np.where(slate >= 0, 0.0, -np.inf)
    sorter = np.argsort(items, kind="stable")
    at = sorter[np.minimum(np.searchsorted(items, slate, sorter=sorter), items.size - 1)]
    found = items[at] == slate
    return np.where(slate < 0, -np.inf, np.where(found, scores[at], scores.max()))


def _static_hits(mask: np.ndarray, reason: str) -> HitFn:
    def hits(ids: np.ndarray, context: RerankContext, rows: np.ndarray) -> tuple[np.ndarray, Callable[[int], str]]:
        return (ids >= 0) & mask[np.where(ids >= 0, ids, 0)], lambda item: reason

    return hits


def _history_hits(rule: rc.HistoryRule | rc.FrequencyCapRule) -> HitFn:
    days: float | None
    if isinstance(rule, rc.FrequencyCapRule):
        days, least = rule.window_days, rule.max_count
        reason = f"{least}+ {'/'.join(rule.events)} in the last {days:g} days (cap {least})"
    else:
        days, least = rule.within_days, 1
        window = "ever" if days is None else f"in the last {days:g} days"
        reason = f"user had {'/'.join(rule.events)} {window}"

    def hits(ids: np.ndarray, context: RerankContext, rows: np.ndarray) -> tuple[np.ndarray, Callable[[int], str]]:
        if context.exposure is None:
            raise ValueError(f"rule {rule.name!r} ({rule.type}) needs RerankContext.exposure")
        since = -np.inf if days is None else context.now - days * DAY_S
        hit = np.zeros(ids.shape, dtype=bool)
        for b, row in enumerate(rows):
            counts = context.exposure.counts(int(context.user_ids[row]), since=since, events=rule.events)
            bad = [item for item, n in counts.items() if n >= least]
            if bad:
                hit[b] = (ids[b] >= 0) & np.isin(ids[b], bad)
        return hit, lambda item: reason

    return hits
