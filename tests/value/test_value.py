"""The value objective and weight sweeps with a Pareto front."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankstack.errors import ConfigError
from rankstack.value import ValueObjective, ValueTerm, pareto_mask, plot_pareto, sweep_weights


def _pred() -> dict[str, np.ndarray]:
    return {"click": np.array([0.1, 0.2]), "cvr": np.array([0.5, 0.1]), "payout": np.array([10.0, 30.0])}


def test_default_objective_is_expected_revenue() -> None:
    np.testing.assert_allclose(ValueObjective().score(_pred()), [0.5, 0.6])


def test_blend_and_yaml(tmp_path: Path) -> None:
    obj = ValueObjective.revenue_plus_clicks(2.0)
    np.testing.assert_allclose(obj.score(_pred()), [0.5 + 0.2, 0.6 + 0.4])
    assert obj.describe() == "1·click·cvr·payout + 2·click"
    path = tmp_path / "v.yaml"
    path.write_text(
        "name: mix\nterms:\n  - {weight: 1.0, factors: [click, cvr, payout]}\n  - {weight: 2, factors: [click]}\n"
    )
    loaded = ValueObjective.from_yaml(path)
    np.testing.assert_allclose(loaded.score(_pred()), obj.score(_pred()))
    path.write_text("terms:\n  - {weight: 1.0, factors: []}\n")
    with pytest.raises(ConfigError, match="invalid value objective"):
        ValueObjective.from_yaml(path)
    with pytest.raises(KeyError, match="conversion"):
        ValueObjective(terms=(ValueTerm(factors=("conversion",)),)).score(_pred())


def test_sweep_and_pareto_plot(tmp_path: Path) -> None:
    pred = _pred()

    def evaluate(obj: ValueObjective) -> dict[str, float]:
        best = int(np.argmax(obj.score(pred)))
        return {"revenue_per_mille": float(pred["click"][best] * pred["cvr"][best] * pred["payout"][best]),
                "clicks_per_mille": float(pred["click"][best]), "ndcg": 1.0 - best}

    points = sweep_weights(ValueObjective.revenue_plus_clicks(0.0), 1, [0.0, 1.0, 10.0], evaluate)
    assert [p.weight for p in points] == [0.0, 1.0, 10.0]
    assert points[0].metrics["revenue_per_mille"] == pytest.approx(0.6)
    out = plot_pareto(points, tmp_path / "front.png")
    assert out.stat().st_size > 1000
    with pytest.raises(IndexError):
        sweep_weights(ValueObjective(), 3, [1.0], evaluate)


def test_pareto_mask_by_hand() -> None:
    v = np.array([[1, 1], [2, 0], [0, 2], [0.5, 0.5], [2, 0]])
    assert pareto_mask(v).tolist() == [True, True, True, False, True]


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 3)), elements=st.floats(-5, 5)))
def test_pareto_front_is_nonempty_and_undominated(values: np.ndarray) -> None:
    mask = pareto_mask(values)
    assert mask.any()
    for i in np.flatnonzero(mask):
        dominated = (values >= values[i]).all(axis=1) & (values > values[i]).any(axis=1)
        assert not dominated.any()
