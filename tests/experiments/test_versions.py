"""The local registry: register, list, promote, roll back, and the edge cases of each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rankstack.errors import RegistryError
from rankstack.experiments.versions import REGISTRY_ENV, VersionRegistry, default_registry_dir
from rankstack.io import sha256_file
from rankstack.pipeline.artifact import FORMAT
from rankstack.pipeline.integrity import seal


def fake_artifact(root: Path, version: str) -> Path:
    """A sealed directory with one file and its manifest (registration verifies, it does not load)."""
    root.mkdir(parents=True)
    (root / "weights.bin").write_bytes(version.encode())
    manifest = {"format": FORMAT, "version": version, "name": "p", "config": {},
                "files": {"weights.bin": sha256_file(root / "weights.bin")}, "components": {},
                "metrics": {"pipeline": {"recall@20": 0.25}}}
    seal(root, manifest)
    return root


def test_empty_registry(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path / "reg")
    assert reg.listing() == [] and reg.active() is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    with pytest.raises(RegistryError, match=r"unknown version 'v1'.*registered: none"):
        reg.promote("v1")


def test_promote_and_rollback(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path / "reg")
    first = reg.register(fake_artifact(tmp_path / "a", "v1"))
    assert reg.active() == first and first.metrics == {"recall@20": 0.25}
    reg.register(fake_artifact(tmp_path / "b", "v2"))
    assert reg.active() is not None and reg.active().version == "v1"  # type: ignore[union-attr]
    reg.promote("v2")
    reg.promote("v2")  # promoting the active version changes nothing
    assert [r["active"] for r in reg.listing()] == [False, True]
    assert reg.rollback().version == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    with pytest.raises(RegistryError, match=r"unknown version 'v9'.*v1, v2"):
        reg.promote("v9")


def test_duplicate_and_invalid_registrations(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path / "reg")
    art = fake_artifact(tmp_path / "a", "v1")
    reg.register(art)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(art)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="cannot register"):
        reg.register(tmp_path / "empty")


def test_promoting_a_deleted_artifact_is_refused(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path / "reg")
    reg.register(fake_artifact(tmp_path / "a", "v1"))
    reg.register(fake_artifact(tmp_path / "b", "v2"))
    shutil.rmtree(tmp_path / "b")
    assert [r["exists"] for r in reg.listing()] == [True, False]
    with pytest.raises(RegistryError, match="is gone"):
        reg.promote("v2")


def test_corrupt_index_is_a_registry_error(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path)
    reg.index_path.write_text("[1, 2")
    with pytest.raises(RegistryError, match="unreadable registry index"):
        reg.listing()


def test_default_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "r"))
    assert default_registry_dir() == tmp_path / "r" and VersionRegistry().root == tmp_path / "r"
    monkeypatch.delenv(REGISTRY_ENV)
    assert default_registry_dir() == Path.home() / ".rankstack" / "registry"


def test_concurrent_registrations_are_all_kept(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    arts = [fake_artifact(tmp_path / f"a{n}", f"v{n}") for n in range(8)]
    reg = VersionRegistry(tmp_path / "reg")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reg.register, arts))
    assert sorted(r["version"] for r in reg.listing()) == [f"v{n}" for n in range(8)]


def test_the_digest_is_recorded_and_a_changed_artifact_is_neither_registered_nor_promoted(tmp_path: Path) -> None:
    reg = VersionRegistry(tmp_path / "reg")
    first = reg.register(fake_artifact(tmp_path / "a", "v1"))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert first.digest == manifest["digest"] and first.digest.startswith("sha256:")
    assert reg.listing()[0]["digest"] == first.digest
    edited = fake_artifact(tmp_path / "b", "v2")
    (edited / "manifest.json").write_text((edited / "manifest.json").read_text().replace("0.25", "0.95"))
    with pytest.raises(RegistryError, match=r"cannot register: .*manifest was changed"):
        reg.register(edited)
    reg.register(fake_artifact(tmp_path / "c", "v3"))
    (tmp_path / "c" / "weights.bin").write_bytes(b"other weights")
    with pytest.raises(RegistryError, match=r"cannot promote 'v3': .*weights\.bin: checksum mismatch"):
        reg.promote("v3")
    shutil.rmtree(tmp_path / "c")
    fake_artifact(tmp_path / "c", "v3-rewritten")  # a valid artifact, but not the one registered as v3
    with pytest.raises(RegistryError, match=r"now has digest .* registered with"):
        reg.promote("v3")
    assert reg.active() == first
