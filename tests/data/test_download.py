"""Downloads through file:// URLs only (never the network): plain files, zips, skip/force, failures."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from rankstack.data.loaders import Download, DownloadError, download_dataset, load_dataset
from rankstack.data.loaders.download import extract_zip
from rankstack.errors import DatasetNotFoundError

RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964982224\n2,1,5.0,964982931\n"
MOVIES = (
    'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, The (1995)",(no genres listed)\n'
)


def make_ml_zip(path: Path) -> Path:
    """A tiny zip laid out like GroupLens' ml-latest-small.zip."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-latest-small/", "")
        zf.writestr("ml-latest-small/ratings.csv", RATINGS)
        zf.writestr("ml-latest-small/movies.csv", MOVIES)
        zf.writestr("__MACOSX/ml-latest-small/._ratings.csv", "junk")
    return path


def test_zip_download_extracts_into_loader_layout(tmp_path: Path) -> None:
    url = make_ml_zip(tmp_path / "ml.zip").as_uri()
    dest = tmp_path / "data"
    root = download_dataset(
        "ml-latest-small", dest, downloads=[Download(url, kind="zip", strip="ml-latest-small/")]
    )
    assert root == dest / "ml-latest-small"
    assert sorted(p.name for p in root.iterdir()) == ["movies.csv", "ratings.csv"]
    data = load_dataset("ml-latest-small", dest)
    assert (data.n_users, data.n_items, len(data)) == (2, 2, 3)
    assert data.item_features is not None and data.item_features.get_column("genres").to_list() == [
        ["Animation", "Comedy"],
        [],
    ]


def test_plain_file_download_skip_and_force(tmp_path: Path) -> None:
    src = tmp_path / "beauty.txt"
    src.write_text("1 1\n1 2\n2 1\n")
    dest = tmp_path / "data"
    sources = [Download(src.as_uri(), target="beauty.txt")]
    root = download_dataset("beauty", dest, downloads=sources)
    assert (root / "beauty.txt").read_text() == "1 1\n1 2\n2 1\n"
    assert len(load_dataset("beauty", dest)) == 3
    src.unlink()
    assert download_dataset("beauty", dest, downloads=sources) == root  # present: nothing fetched
    with pytest.raises(DownloadError, match=r"beauty\.txt"):
        download_dataset("beauty", dest, downloads=sources, force=True)
    assert (root / "beauty.txt").is_file()  # the old copy survives a failed re-download
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp files left


def test_unsafe_or_broken_archives_rejected(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("x/../../escape.txt", "boom")
    with pytest.raises(DownloadError, match="unsafe member"):
        extract_zip(evil, tmp_path / "out", "x/")
    assert not (tmp_path / "escape.txt").exists()
    broken = tmp_path / "broken.zip"
    broken.write_text("not a zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        download_dataset("movielens-100k", tmp_path / "d", downloads=[Download(broken.as_uri(), kind="zip")])


def test_download_that_lacks_needed_files_fails(tmp_path: Path) -> None:
    src = tmp_path / "train.txt"
    src.write_text("0 1\n")
    with pytest.raises(DatasetNotFoundError, match=r"still missing \[\('test.txt.gz', 'test.txt'\)\]"):
        download_dataset("gowalla", tmp_path / "d", downloads=[Download(src.as_uri(), target="train.txt")])


def test_every_registered_dataset_has_a_public_source() -> None:
    from rankstack.data.loaders import REGISTRY

    for spec in REGISTRY.values():
        assert spec.downloads and all(d.url.startswith("https://") for d in spec.downloads), spec.name
