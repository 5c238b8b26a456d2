"""The representation closed loop runs end to end on a tiny world: every variant serves, the learning ones fold
their feedback, greedy folds nothing, and the record names both φ's R²."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import online_representation
import pytest


def test_the_loop_runs_every_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(online_representation, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["x", "--users", "150", "--items", "40", "--history", "4000", "--rounds", "100",
                                      "--chunk", "50", "--seeds", "1", "--sasrec-epochs", "1", "--pool", "10"])
    online_representation.main()
    record = json.loads((tmp_path / "online_representation.json").read_text(encoding="utf-8"))
    results = record["results"]
    assert set(results) == {name for name, _, _ in online_representation.VARIANTS}
    assert results["greedy"]["per_seed"][0]["folded"] == 0
    assert all(results[n]["per_seed"][0]["folded"] > 0 for n in results if n != "greedy")
    assert all(0 < results[n]["all"] < 5 for n in results)  # k = 5 slots, each a click probability
    assert set(record["phi_r2"]) == {"svd", "sasrec"} and all(r <= 1 for r in record["phi_r2"].values())
