"""The artifact version registry (the embedded default): a JSON index of pipeline artifact versions on disk.

``index.json`` (written atomically) holds every registered version with its artifact path, the active
version, and the stack of previously active versions that ``rollback`` returns to. Artifacts stay where
they were written; the registry only points at them, and records each one's content digest (verified when it is
registered and again when it is promoted, so a changed artifact cannot become active under an old name).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rankstack.errors import ArtifactError, RegistryError
from rankstack.io import write_text_atomic
from rankstack.pipeline.artifact import check_artifact, read_manifest

REGISTRY_ENV = "RANKSTACK_REGISTRY"
INDEX = "index.json"


def default_registry_dir() -> Path:
    """``$RANKSTACK_REGISTRY``, else ``~/.rankstack/registry``."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser() if env else Path.home() / ".rankstack" / "registry"


class VersionEntry(BaseModel):
    """One registered artifact."""

    model_config = ConfigDict(extra="forbid")
    version: str
    path: str
    digest: str = ""
    name: str = ""
    created_at: str = ""
    registered_at: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)


class VersionIndex(BaseModel):
    """The whole index: versions in registration order, the active one, and the previously active ones."""

    model_config = ConfigDict(extra="forbid")
    versions: list[VersionEntry] = Field(default_factory=list)
    active: str | None = None
    previous: list[str] = Field(default_factory=list)


class VersionRegistry:
    """Register, list, promote and roll back pipeline artifacts under ``root``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_registry_dir()

    @property
    def index_path(self) -> Path:
        """Where the JSON index lives."""
        return self.root / INDEX

    def read(self) -> VersionIndex:
        """The index (empty when the registry does not exist yet)."""
        if not self.index_path.is_file():
            return VersionIndex()
        try:
            return VersionIndex.model_validate(json.loads(self.index_path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, ValidationError) as exc:
            raise RegistryError(f"{self.index_path}: unreadable registry index ({exc})") from None

    def _write(self, index: VersionIndex) -> None:
        write_text_atomic(self.index_path, index.model_dump_json(indent=2) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the index across processes (an advisory lock where the OS has one)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            try:
                import fcntl
            except ImportError:  # no advisory locks on this platform: last writer wins
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, version: str) -> VersionEntry:
        """The entry of ``version`` (``RegistryError`` listing the known ones if absent)."""
        index = self.read()
        for entry in index.versions:
            if entry.version == version:
                return entry
        known = ", ".join(e.version for e in index.versions) or "none"
        raise RegistryError(f"unknown version {version!r} in {self.root}; registered: {known}")

    def register(self, artifact: str | Path, *, activate_if_first: bool = True) -> VersionEntry:
        """Add an artifact (its digest and files are verified); the first one registered becomes active."""
        path = Path(artifact).resolve()
        try:
            manifest = read_manifest(path)
            digest = check_artifact(path)
        except ArtifactError as exc:
            raise RegistryError(f"cannot register: {exc}") from None
        version = str(manifest["version"])
        final = manifest.get("metrics", {}).get("pipeline", {})
        entry = VersionEntry(version=version, path=str(path), digest=digest, name=str(manifest.get("name", "")),
                      created_at=str(manifest.get("created_at", "")),
                      registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
                      metrics={k: float(v) for k, v in final.items() if isinstance(v, int | float)})
        with self._locked():
            index = self.read()
            if any(e.version == version for e in index.versions):
                raise RegistryError(f"version {version!r} is already registered in {self.root}")
            index.versions.append(entry)
            if index.active is None and activate_if_first:
                index.active = version
            self._write(index)
        return entry

    def promote(self, version: str) -> VersionEntry:
        """Make ``version`` active; the formerly active one is remembered for ``rollback``."""
        entry = self.get(version)
        if not Path(entry.path).is_dir():
            raise RegistryError(f"cannot promote {version!r}: its artifact {entry.path} is gone")
        self._check_unchanged(entry, "promote")
        with self._locked():
            index = self.read()
            if index.active == version:
                return entry
            if index.active is not None:
                index.previous.append(index.active)
            index.active = version
            self._write(index)
        return entry

    def _check_unchanged(self, entry: VersionEntry, action: str) -> None:
        """The artifact still verifies and has the digest recorded at registration (``RegistryError`` otherwise)."""
        try:
            digest = check_artifact(Path(entry.path))
        except ArtifactError as exc:
            raise RegistryError(f"cannot {action} {entry.version!r}: {exc}") from None
        if entry.digest and digest != entry.digest:
            raise RegistryError(f"cannot {action} {entry.version!r}: {entry.path} now has digest {digest}, it was "
                                f"registered with {entry.digest} (another artifact was written there)")

    def rollback(self) -> VersionEntry:
        """Re-activate the previously active version (``RegistryError`` when there is none)."""
        with self._locked():
            index = self.read()
            if not index.previous:
                raise RegistryError(f"nothing to roll back to in {self.root}: no previously active version")
            entry = next(e for e in index.versions if e.version == index.previous[-1])
            self._check_unchanged(entry, "roll back to")
            index.active = index.previous.pop()
            self._write(index)
        return entry

    def active(self) -> VersionEntry | None:
        """The active entry, or None."""
        index = self.read()
        return next((e for e in index.versions if e.version == index.active), None)

    def listing(self) -> list[dict[str, Any]]:
        """Every version with an ``active`` flag and whether its artifact still exists."""
        index = self.read()
        return [{**e.model_dump(), "active": e.version == index.active, "exists": Path(e.path).is_dir()}
                for e in index.versions]
