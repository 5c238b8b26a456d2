"""Named dataset loaders, found in the data directories, plus your own logs (CSV, Parquet, text, JSON lines).

Search order for a named dataset: ``--data-dir``, ``$RANKSTACK_DATA``, ``../shared/data``, the download
cache (:func:`default_download_dir`), then the copy bundled with the package (ml-latest-small only).
"""

from __future__ import annotations

import os
from pathlib import Path

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import beauty, gowalla, movielens, open_bandit
from rankstack.data.loaders.download import DownloadError, default_download_dir, download_spec
from rankstack.data.loaders.event_log import LoadedLog, ReadInfo, is_event_log_path, load_event_log, read_event_log
from rankstack.data.loaders.read_options import ReadOptions
from rankstack.data.loaders.specs import DatasetSpec, Download, SplitKind
from rankstack.data.loaders.split_choice import SplitChoice, choose_split
from rankstack.errors import ConfigError, DatasetNotFoundError
from rankstack.paths import BUNDLED_DIR, ENV_DATA_DIR, data_dirs

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (*movielens.SPECS, *gowalla.SPECS, *beauty.SPECS, *open_bandit.SPECS)
}


class UnknownDatasetError(DatasetNotFoundError, KeyError):
    """A dataset name that is not registered (also a KeyError, for dict-like lookups)."""


def _unknown(name: str) -> UnknownDatasetError:
    """The error for a name that is neither registered nor a path."""
    return UnknownDatasetError(
        f"unknown dataset {name!r}; known: {', '.join(REGISTRY)} (or pass a path to a CSV/Parquet event log)"
    )


def get_spec(name: str) -> DatasetSpec:
    """The registered spec called ``name``; raises UnknownDatasetError listing the known names."""
    if name not in REGISTRY:
        raise _unknown(name)
    return REGISTRY[name]


def standard_split(
    name: str | Path, dataset: Dataset, info: ReadInfo | None = None, *, requested: str | None = None
) -> SplitChoice:
    """The split ``dataset`` gets (``requested``, else its default) and why; raises when the data supports none."""
    spec = REGISTRY.get(name) if isinstance(name, str) else None
    return choose_split(dataset, requested, spec=spec, info=info)


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for named datasets, in priority order (existing ones only)."""
    dirs = data_dirs(data_dir)
    seen = {d.resolve() for d in dirs}
    for extra in (default_download_dir(), BUNDLED_DIR):
        if extra.is_dir() and extra.resolve() not in seen:
            seen.add(extra.resolve())
            dirs.append(extra)
    return dirs


def _locate(spec: DatasetSpec, data_dir: str | Path | None) -> Path | None:
    """The first ``dir / spec.subdir`` holding every needed file, or None."""
    for directory in search_dirs(data_dir):
        root = directory / spec.subdir
        if spec.resolve(root) is not None:
            return root
    return None


def find_dataset(name: str, data_dir: str | Path | None = None) -> Path:
    """Folder of the named dataset; raises DatasetNotFoundError listing where it looked."""
    spec = get_spec(name)
    root = _locate(spec, data_dir)
    if root is None:
        dirs = [d for d in search_dirs(data_dir) if d != BUNDLED_DIR or (d / spec.subdir).is_dir()]
        searched = [str(d / spec.subdir) for d in dirs]
        if data_dir is not None and not Path(data_dir).is_dir():
            searched.insert(0, f"{data_dir} (does not exist)")
        needed = [" or ".join(alts) for alts in spec.files]
        raise DatasetNotFoundError(
            f"dataset {name!r} not found (needs {', '.join(needed)}); "
            f"searched: {'; '.join(searched) or 'nothing (no data directory exists)'}. "
            f"Run `rankstack data download {name}`, set ${ENV_DATA_DIR} or pass --data-dir."
        )
    return root


def list_datasets(data_dir: str | Path | None = None) -> list[tuple[DatasetSpec, Path | None]]:
    """Every registered dataset with the folder it was found in (None when missing)."""
    return [(spec, _locate(spec, data_dir)) for spec in REGISTRY.values()]


def open_dataset(
    name: str | Path, data_dir: str | Path | None = None, options: ReadOptions | None = None, *, strict: bool = True
) -> LoadedLog:
    """A registered dataset by name, or a log file / directory by path read as ``options`` say, with how it was
    read (None for registered and saved datasets); ``strict=False`` reports repeated rows instead of failing."""
    options = options or ReadOptions()
    if isinstance(name, str) and name in REGISTRY:
        if not options.is_default():
            raise ConfigError(f"{name!r} is a registered dataset, read by its own loader: format, columns, order, "
                              "time unit, duplicates, ignore and split files apply to your own files only")
        return LoadedLog(REGISTRY[name].loader(find_dataset(name, data_dir)), None)
    path = Path(name)
    if isinstance(name, Path) or path.exists() or is_event_log_path(path) or "/" in name or os.sep in name \
            or not options.is_default():
        return read_event_log(path, options, strict=strict)
    raise _unknown(name)


def load_dataset(name: str | Path, data_dir: str | Path | None = None, options: ReadOptions | None = None) -> Dataset:
    """Load a registered dataset by name, or an event-log file / directory given by path (read as ``options`` say)."""
    return open_dataset(name, data_dir, options).dataset


def download_dataset(
    name: str, dest: Path | None = None, *, force: bool = False, downloads: list[Download] | None = None
) -> Path:
    """Fetch a registered dataset into ``dest`` (default :func:`default_download_dir`); returns its folder."""
    return download_spec(get_spec(name), dest or default_download_dir(), force=force, downloads=downloads)


__all__ = [
    "REGISTRY",
    "DatasetSpec",
    "Download",
    "DownloadError",
    "LoadedLog",
    "ReadInfo",
    "ReadOptions",
    "SplitChoice",
    "SplitKind",
    "UnknownDatasetError",
    "choose_split",
    "default_download_dir",
    "download_dataset",
    "find_dataset",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "load_event_log",
    "open_dataset",
    "read_event_log",
    "search_dirs",
    "standard_split",
]
