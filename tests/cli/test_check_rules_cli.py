"""``rankstack check-rules``: a valid file is listed, a bad one names the field, a dataset's attributes are checked."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rankstack.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "rules" / "example.yaml"


def test_check_rules_command(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["check-rules", str(EXAMPLE)], env={"COLUMNS": "200"})
    assert ok.exit_code == 0 and "valid" in ok.output and "sponsored-slots" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: r, type: cap, attribute: c, max_per_slate: 0}\n")
    result = runner.invoke(app, ["check-rules", str(bad)])
    assert result.exit_code == 2 and "field 'max_per_slate'" in result.output
    genre = tmp_path / "genre.yaml"
    genre.write_text("rules:\n  - {name: g, type: cap, attribute: genres, max_per_slate: 2}\n")
    assert runner.invoke(app, ["check-rules", str(genre), "--dataset", "ml-latest-small"]).exit_code == 0
