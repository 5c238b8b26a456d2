"""`rankstack data list` and `rankstack data download` through Typer's CliRunner (file:// URLs only)."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.loaders import REGISTRY, Download, load_dataset

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # one table line per dataset


def row_of(output: str, name: str) -> str:
    """The first table line of ``name``."""
    return next(line for line in output.splitlines() if line.startswith(f"│ {name} "))


def test_list_shows_bundled_ml_latest_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here: only the bundled copy is found
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = runner.invoke(app, ["data", "list"], env=WIDE)
    assert result.exit_code == 0, result.output
    line = row_of(result.output, "ml-latest-small")
    assert "bundled" in line and "missing" not in line and "leave_one_out" in line
    assert "missing" in row_of(result.output, "movielens-1m")
    assert "predefined" in row_of(result.output, "gowalla")


def test_list_with_data_dir(tmp_path: Path) -> None:
    root = tmp_path / "bert4rec_amazon_beauty"
    root.mkdir()
    (root / "beauty.txt").write_text("1 1\n")
    result = runner.invoke(app, ["data", "list", "--data-dir", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert str(root) in row_of(result.output, "beauty")


def test_download_from_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n7,3,4.5,964982703\n")
        zf.writestr("ml-latest-small/movies.csv", "movieId,title,genres\n3,Heat (1995),Action\n")
    spec = REGISTRY["ml-latest-small"]
    source = Download(archive.as_uri(), kind="zip", strip="ml-latest-small/")
    monkeypatch.setitem(REGISTRY, "ml-latest-small", replace(spec, downloads=(source,)))
    dest = tmp_path / "data"

    result = runner.invoke(app, ["data", "download", "ml-latest-small", "--dest", str(dest)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "licence" in result.output and "ready at" in result.output
    data = load_dataset("ml-latest-small", dest)
    assert (data.n_users, data.n_items, len(data)) == (1, 1, 1)

    archive.unlink()  # present already: a second run fetches nothing
    again = runner.invoke(app, ["data", "download", "ml-latest-small", "--dest", str(dest)], env=WIDE)
    assert again.exit_code == 0, again.output
    forced = runner.invoke(
        app, ["data", "download", "ml-latest-small", "--dest", str(dest), "--force"], env=WIDE
    )
    assert forced.exit_code != 0
    assert "error:" in forced.output and "Traceback" not in forced.output
    assert forced.exception is None or isinstance(forced.exception, SystemExit)


def test_download_unknown_name_is_clean() -> None:
    result = runner.invoke(app, ["data", "download", "no-such-data"], env=WIDE)
    assert result.exit_code != 0
    assert "unknown dataset 'no-such-data'" in result.output and "Traceback" not in result.output
