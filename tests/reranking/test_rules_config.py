"""Rule files: the example loads and compiles; bad files fail at load time naming file, rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankstack.errors import ConfigError
from rankstack.reranking import ItemCatalog, RerankPipeline, load_rerank_config
from rankstack.reranking.rules.rule_config import RULE_TYPES, Rule

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "rules" / "example.yaml"

RULE = "rules:\n  - name: r\n    type: {type}\n{body}"

BAD_FILES: list[tuple[str, str, str]] = [
    ("yaml-syntax", "rules: [\n  - name: x\n", "invalid YAML at line"),
    ("not-a-mapping", "- a\n- b\n", "expected a mapping at the top level, got list"),
    ("unknown-top-key", "rulez: []\n", "unknown field 'rulez'"),
    ("unknown-type", RULE.format(type="sparkle", body=""), "rules[0] 'r' (sparkle), field 'type'"),
    ("missing-type", "rules:\n  - name: r\n", "rules[0] 'r', field 'type'"),
    ("missing-name", "rules:\n  - type: cap\n    attribute: c\n    max_per_slate: 1\n",
     "rules[0] (cap): missing required field 'name'"),
    ("unknown-field", RULE.format(type="cap", body="    attribute: c\n    max_per_slate: 1\n    max: 3\n"),
     "rules[0] 'r' (cap): unknown field 'max'"),
    ("cap-below-one", RULE.format(type="cap", body="    attribute: c\n    max_per_slate: 0\n"),
     "rules[0] 'r' (cap), field 'max_per_slate': Input should be greater than or equal to 1"),
    ("cap-not-int", RULE.format(type="cap", body="    attribute: c\n    max_per_slate: many\n"),
     "field 'max_per_slate': Input should be a valid integer"),
    ("filter-no-match", RULE.format(type="filter", body=""), "rules[0] 'r' (filter): missing required field 'match'"),
    ("match-two-tests", RULE.format(type="filter", body="    match: {attribute: a, equals: 1, one_of: [2]}\n"),
     "field 'match': give exactly one of equals, one_of, contains, or at_least/at_most"),
    ("match-unknown-op", RULE.format(type="filter", body="    match: {attribute: a, like: x}\n"),
     "field 'match': unknown field 'like'"),
    ("pin-both", RULE.format(type="pin", body="    slot: 1\n    item: 3\n    match: {attribute: a, equals: 1}\n"),
     "rules[0] 'r' (pin): give exactly one of 'item' or 'match'"),
    ("pin-slot-zero", RULE.format(type="pin", body="    slot: 0\n    item: 3\n"), "field 'slot'"),
    ("boost-zero", RULE.format(type="boost", body="    match: {attribute: a, equals: 1}\n    amount: 0\n"),
     "amount must be non-zero"),
    ("share-above-one", RULE.format(type="min_share", body="    match: {attribute: a, equals: 1}\n    share: 1.5\n"),
     "field 'share': Input should be less than or equal to 1"),
    ("slot-limit-empty", RULE.format(type="slot_limit", body="    match: {attribute: a, equals: 1}\n"),
     "give max_count, forbidden_slots or both"),
    ("freq-cap-window", RULE.format(type="frequency_cap", body="    max_count: 2\n    window_days: -1\n"),
     "field 'window_days': Input should be greater than 0"),
    ("pacing-window", RULE.format(type="pacing", body="    budgets: {a: 1}\n    start: 2026-02-01\n"
                                  "    end: 2026-01-01\n"), "end must be after start"),
    ("pacing-curve", RULE.format(type="pacing", body="    budgets: {a: 1}\n    start: 2026-01-01\n"
                                 "    end: 2026-02-01\n    curve: [0, 0.7, 0.5, 1]\n"), "curve must be non-decreasing"),
    ("pacing-budget", RULE.format(type="pacing", body="    budgets: {a: -5}\n    start: 2026-01-01\n"
                                  "    end: 2026-02-01\n"), "field 'budgets.a': Input should be greater than 0"),
    ("duplicate-names", "rules:\n  - {name: r, type: bury, match: {attribute: a, equals: 1}}\n"
     "  - {name: r, type: bury, match: {attribute: a, equals: 2}}\n", "rules[1] reuses the name 'r' of rules[0]"),
    ("diversity-method", "diversity: {method: xquad}\n", "field 'diversity'"),
    ("diversity-weight", "diversity: {method: mmr, relevance_weight: 1.5}\n",
     "field 'diversity.relevance_weight': Input should be less than or equal to 1"),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_rule_files_are_rejected_with_a_precise_message(tmp_path: Path, case: str, text: str,
                                                            expected: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rerank_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


COMPILE_ERRORS: list[tuple[str, str, str]] = [
    ("unknown-attribute", "  - {name: r, type: filter, match: {attribute: colour, equals: red}}\n",
     "rules[0] 'r' (filter), field 'match.attribute': unknown item attribute 'colour'; available: category"),
    ("contains-on-scalar", "  - {name: r, type: bury, match: {attribute: category, contains: c1}}\n",
     "field 'match.attribute': 'contains' needs a list attribute"),
    ("equals-on-list", "  - {name: r, type: bury, match: {attribute: tags, equals: new}}\n", "use 'contains'"),
    ("range-on-text", "  - {name: r, type: boost, amount: 1, match: {attribute: category, at_least: 2}}\n",
     "at_least/at_most need a numeric attribute"),
    ("pin-unknown-item", "  - {name: r, type: pin, slot: 1, item: 999}\n",
     "rules[0] 'r' (pin), field 'item': item 999 is not in the catalog"),
    ("cap-unknown-attribute", "  - {name: r, type: cap, attribute: brand, max_per_slate: 1}\n",
     "rules[0] 'r' (cap), field 'attribute': unknown item attribute 'brand'"),
    ("pacing-list-attribute", "  - {name: r, type: pacing, attribute: tags, budgets: {a: 1}, start: 2026-01-01, "
     "end: 2026-02-01}\n", "field 'attribute': 'tags' must hold one value per item"),
    ("similarity-attribute", "  - {name: r, type: bury, match: {attribute: sponsored, equals: true}}\n"
     "diversity: {method: mmr}\nsimilarity: {attribute: genre}\n", "field 'similarity.attribute'"),
    ("diversity-without-similarity", "  - {name: r, type: bury, match: {attribute: sponsored, equals: true}}\n"
     "diversity: {method: dpp}\n", "diversity needs a similarity"),
]


@pytest.mark.parametrize(("case", "rules", "expected"), COMPILE_ERRORS, ids=[c[0] for c in COMPILE_ERRORS])
def test_rules_that_do_not_fit_the_catalog_fail_when_compiled(tmp_path: Path, catalog: ItemCatalog, case: str,
                                                              rules: str, expected: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text("rules:\n" + rules)
    with pytest.raises(ConfigError) as info:
        RerankPipeline.from_yaml(path, catalog)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read rules file"):
        load_rerank_config(tmp_path / "nope.yaml")


def test_the_example_loads_compiles_and_uses_every_rule_type(catalog: ItemCatalog) -> None:
    config = load_rerank_config(EXAMPLE)
    assert {r.type for r in config.rules} == set(RULE_TYPES)
    pipeline = RerankPipeline.from_yaml(EXAMPLE, catalog)
    assert pipeline.diversifier is not None and len(pipeline.rules.filters) == 6
    assert Rule is not None
