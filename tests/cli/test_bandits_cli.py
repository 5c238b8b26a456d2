"""``rankstack bandits compare``: the JSON contract on a tiny run, and one-line errors with exit 2."""

import json

import pytest
from typer.testing import CliRunner

from rankstack.cli import app


def test_compare_prints_the_contract_json() -> None:
    result = CliRunner().invoke(app, ["bandits", "compare", "--policies", "uniform,linucb", "--rounds", "600",
                                      "--batch", "300", "--json"], env={"RANKSTACK_QUIET": "1"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["policies"]) == {"uniform", "linucb"}
    assert set(report["policies"]["linucb"]) >= {"ctr", "revenue_per_1000", "regret"}


def test_an_unknown_policy_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(app, ["bandits", "compare", "--policies", "uniform,nope"])
    assert result.exit_code == 2
    assert "unknown policy 'nope'" in result.output


def test_bad_rounds_exit_2() -> None:
    result = CliRunner().invoke(app, ["bandits", "compare", "--rounds", "0"])
    assert result.exit_code == 2 and "--rounds" in result.output


def test_vw_without_its_package_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vowpalwabbit" else real(name, *a))
    result = CliRunner().invoke(app, ["bandits", "compare", "--policies", "uniform,vw_squarecb"])
    assert result.exit_code == 2
    assert "rankstack[peers]" in result.output
