"""Fetch public dataset files with urllib into the layout the loaders read (temp file, then rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from rankstack.data.loaders.specs import DatasetSpec, Download
from rankstack.errors import DatasetNotFoundError, RankstackError
from rankstack.io import atomic_write
from rankstack.paths import ENV_DATA_DIR

CHUNK = 1 << 16


class DownloadError(RankstackError):
    """A dataset file could not be fetched or unpacked."""


def default_download_dir() -> Path:
    """``$RANKSTACK_DATA`` when set, else ``$XDG_CACHE_HOME/rankstack/data`` (``~/.cache`` by default)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rankstack" / "data"


def fetch(url: str, target: Path, progress: Progress) -> None:
    """Stream ``url`` into ``target`` through a temp file beside it; it appears only when complete."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_write(target) as tmp:
            length = response.headers.get("Content-Length")
            task = progress.add_task(target.name, total=int(length) if length else None)
            with tmp.open("wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"download of {url} failed: {exc}") from exc


def extract_zip(archive: Path, root: Path, strip: str = "") -> list[Path]:
    """Unpack members under the ``strip`` folder into ``root`` (each file written atomically)."""
    written: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or not name.startswith(strip) or name == strip:
                    continue
                rel = PurePosixPath(name[len(strip) :])
                if rel.is_absolute() or ".." in rel.parts:
                    raise DownloadError(f"{archive}: unsafe member path {name!r}")
                target = root.joinpath(*rel.parts)
                with zf.open(info) as src, atomic_write(target) as tmp, tmp.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{archive}: not a valid zip archive ({exc})") from exc
    except OSError as exc:
        raise DownloadError(f"{archive}: cannot unpack into {root}: {exc}") from exc
    if not written:
        raise DownloadError(f"{archive}: no files under {strip!r} in the archive")
    return written


def download_spec(
    spec: DatasetSpec,
    dest: Path,
    *,
    force: bool = False,
    downloads: Sequence[Download] | None = None,
    console: Console | None = None,
) -> Path:
    """Fetch ``spec``'s files into ``dest / spec.subdir`` unless already there (or ``force``); returns it."""
    root = Path(dest) / spec.subdir
    if not force and spec.resolve(root) is not None:
        return root
    sources = spec.downloads if downloads is None else tuple(downloads)
    if not sources:
        raise DownloadError(f"{spec.name}: no download source is known")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {root}: {exc}") from exc
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as progress:
        for source in sources:
            if source.kind == "zip":
                with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
                    archive = Path(tmp) / (source.url.rsplit("/", 1)[-1] or "archive.zip")
                    fetch(source.url, archive, progress)
                    extract_zip(archive, root / source.target, source.strip)
            else:
                fetch(source.url, root / (source.target or source.url.rsplit("/", 1)[-1]), progress)
    if spec.resolve(root) is None:
        missing = [alts for alts in spec.files if not any((root / a).is_file() for a in alts)]
        raise DatasetNotFoundError(f"{spec.name}: downloaded into {root} but still missing {missing}")
    return root
