"""FitSummary: the closed-form convention, the still-improving warning, the curve text and the JSON round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.evaluation.fit_summary import STOPPED_BY, FitSummary


def test_a_closed_form_fit_ran_no_epochs_and_converged() -> None:
    summary = FitSummary.closed_form()
    assert summary.headline() == {"epochs_run": 0, "best_epoch": None, "stopped_by": "converged"}
    assert summary.warning() is None and summary.curve_text() == "-"


@pytest.mark.parametrize(("stopped_by", "curve", "warns"), [
    ("budget", ((1, 0.10),), "time_budget_s=60 ran out while validation val_ndcg@10 was still improving"),
    ("epochs", ((1, 0.10), (2, 0.20)), "the last of 2 configured epochs ran"),
    ("epochs", ((1, 0.10), (2, 0.30), (3, 0.20)), None),  # past its best: it had started to fall
    ("epochs", ((1, 0.20), (2, 0.20)), None),  # a tie is no gain
    ("converged", ((1, 0.10), (2, 0.20)), None),
    ("budget", (), "without a validation curve"),
    ("epochs", (), None),
])
def test_warns_when_training_stopped_before_validation_stopped_improving(
        stopped_by: str, curve: tuple[tuple[int, float], ...], warns: str | None) -> None:
    summary = FitSummary(len(curve), curve[-1][0] if curve else None, stopped_by,  # type: ignore[arg-type]
                         epochs=2, metric="val_ndcg@10", curve=curve, budget_s=60.0)
    warning = summary.warning()
    if warns is None:
        assert warning is None
    else:
        assert warning is not None and warns in warning


def test_a_lower_is_better_curve_warns_when_its_last_value_is_its_lowest() -> None:
    falling = FitSummary(3, 3, "epochs", 3, "validation_loss", ((1, 0.5), (2, 0.4), (3, 0.3)), higher_is_better=False)
    assert falling.still_improving and "raise epochs" in (falling.warning() or "")
    assert not FitSummary(3, 2, "epochs", 3, "validation_loss", ((1, 0.5), (2, 0.3), (3, 0.4)),
                          higher_is_better=False).still_improving


def test_the_curve_text_keeps_first_best_and_last() -> None:
    curve = (*((e, 0.1 + 0.01 * e) for e in range(1, 30)), (30, 0.9), (31, 0.2))
    text = FitSummary(31, 30, "converged", 40, "m", curve).curve_text(points=4)
    assert text.startswith("1:0.1100") and "30:0.9000" in text and text.endswith("31:0.2000")


def test_an_unknown_stop_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="stopped_by must be one of converged, epochs, budget"):
        FitSummary(1, 1, "patience")  # type: ignore[arg-type]


@given(epochs_run=st.integers(0, 500), best=st.none() | st.integers(1, 500), stopped_by=st.sampled_from(STOPPED_BY),
       values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=20), higher=st.booleans(),
       budget=st.none() | st.floats(0.1, 1e5))
def test_json_round_trip(epochs_run: int, best: int | None, stopped_by: str, values: list[float], higher: bool,
                         budget: float | None) -> None:
    summary = FitSummary(epochs_run, best, stopped_by, 500, "m",  # type: ignore[arg-type]
                         tuple(enumerate(values, start=1)), higher, budget, 1.5)
    assert FitSummary.from_json(summary.to_json()) == summary
    assert FitSummary.from_json(None) is None
