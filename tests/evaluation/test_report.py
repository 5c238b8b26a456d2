"""The HTML report's Training section: epochs run, best epoch, why training stopped, the validation curve and its
chart, and the still-improving warning."""

from __future__ import annotations

from pathlib import Path

from rankstack.evaluation.fit_summary import FitSummary
from rankstack.evaluation.report import curves_chart, training_section, write_report

STOPPED = FitSummary(2, 2, "budget", 200, "val_ndcg@10", ((1, 0.05), (2, 0.07)), budget_s=60.0, wall_s=59.5)
CONVERGED = FitSummary(9, 4, "converged", 50, "val_ndcg@10", tuple((e, 0.1 - abs(e - 4) / 100) for e in range(1, 10)))


def test_the_training_section_says_what_each_fit_did() -> None:
    section = training_section({"sasrec": STOPPED, "ease": FitSummary.closed_form(), "other": CONVERGED})
    assert "<th>sasrec</th><td>2 of 200</td><td>2</td><td>budget</td><td>59.5 s</td><td>1:0.0500 2:0.0700</td>" \
        in section
    assert "<th>ease</th><td>0</td><td>-</td><td>converged</td><td>-</td><td>-</td>" in section
    assert section.count("class=warn") == 1 and "still improving" in section  # only the stopped one warns
    assert "data:image/png;base64," in section  # the curves' chart


def test_no_chart_without_a_curve() -> None:
    assert curves_chart({"ease": FitSummary.closed_form()}) is None
    assert "<img" not in training_section({"ease": FitSummary.closed_form()})
    assert (curves_chart({"sasrec": STOPPED}) or b"")[:4] == b"\x89PNG"


def test_write_report_adds_the_training_section_only_when_given(tmp_path: Path) -> None:
    common = {"title": "t", "results": {"sasrec": {"ndcg@10": 0.1}}, "metrics": ["ndcg@10"], "meta": {}}
    with_training = write_report(tmp_path / "a.html", training={"sasrec": STOPPED}, **common).read_text()
    without = write_report(tmp_path / "b.html", **common).read_text()
    assert "<h2>Training</h2>" in with_training and "<h2>Training</h2>" not in without
