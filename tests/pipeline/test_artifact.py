"""Artifacts: a round trip gives identical slates; corrupt, incomplete or incompatible ones are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rankstack.data.dataset import Dataset
from rankstack.errors import ArtifactError
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.components import REGISTRY
from rankstack.pipeline.integrity import seal
from rankstack.pipeline.pipeline import Pipeline

from .conftest import build, manifest_for

REQUESTS = [RecommendRequest(user_id=u, k=6, request_id=f"r-{u}") for u in ("u0", "u7", "u13", "stranger")]


@pytest.fixture(scope="module")
def saved(small_split: tuple[Dataset, Dataset], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Pipeline, Path]]:
    from .conftest import FAKESEQ

    REGISTRY["source"]["fakeseq"] = FAKESEQ  # module scope outlives the autouse monkeypatch
    pipe = build(small_split[0], ranker={"source": "fakeseq"},
                 exploration={"policy": "softmax", "temperature": 0.5, "pool": 12},
                 rerank={"rules": [{"name": "cap", "type": "cap", "attribute": "category", "max_per_slate": 3}]})
    out = tmp_path_factory.mktemp("art") / "pipe"
    save_artifact(pipe.parts, manifest_for(pipe), out)
    yield pipe, out
    REGISTRY["source"].pop("fakeseq", None)  # later modules (the CLI's --model choices) must not see it


def _dump(pipe: Pipeline) -> list[dict[str, object]]:
    return [r.model_dump(exclude={"stage_ms", "model_version", "model_digest"}) for r in pipe.recommend(REQUESTS)]


def test_round_trip_gives_identical_slates(saved: tuple[Pipeline, Path]) -> None:
    pipe, out = saved
    loaded = Pipeline.load(out)
    assert _dump(loaded) == _dump(pipe)
    assert loaded.version == "small-test-0001" and loaded.describe()["stages"] == pipe.config.stage_names()
    assert {p.name for p in out.iterdir()} >= {"manifest.json", "sources", "fallback", "user_map.parquet",
                                               "item_map.parquet", "histories.safetensors", "catalog.parquet"}
    assert not list(out.parent.glob(".pipe.*"))  # no temp directory left behind


def test_existing_artifact_is_not_overwritten_by_default(saved: tuple[Pipeline, Path]) -> None:
    pipe, out = saved
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(pipe.parts, manifest_for(pipe), out)


def _copy(out: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "copy"
    shutil.copytree(out, dest)
    return dest


def _edit_manifest(root: Path, **changes: object) -> None:
    """Change manifest fields and seal it again (a valid digest), so the checks after the digest are reached."""
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    seal(root, manifest)


def _edit_raw(root: Path, **changes: object) -> None:
    """Change manifest fields without sealing it again."""
    path = root / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _files(root: Path) -> dict[str, str]:
    return dict(json.loads((root / "manifest.json").read_text())["files"])


def _relink(root: Path, rel: str) -> None:
    """Replace a listed file by a symbolic link to an identical copy outside the artifact."""
    outside = root.parent / f"outside-{rel.replace('/', '_')}"
    (root / rel).rename(outside)
    (root / rel).symlink_to(outside)


def test_an_edited_manifest_is_refused(saved: tuple[Pipeline, Path], tmp_path: Path) -> None:
    root = _copy(saved[1], tmp_path)
    path = root / "manifest.json"
    assert '"temperature": 0.5' in path.read_text()
    path.write_text(path.read_text().replace('"temperature": 0.5', '"temperature": 0.95'))
    with pytest.raises(ArtifactError, match=r"manifest\.json: the manifest was changed after the artifact was written"):
        Pipeline.load(root)


def test_the_digest_is_a_content_address_served_with_every_slate(saved: tuple[Pipeline, Path],
                                                                  tmp_path: Path) -> None:
    pipe, out = saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["digest"].startswith("sha256:") and set(manifest["files"]) == {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    loaded = Pipeline.load(out)
    assert loaded.digest == manifest["digest"] == loaded.describe()["digest"]
    assert {r.model_digest for r in loaded.recommend(REQUESTS)} == {manifest["digest"]}
    again = save_artifact(pipe.parts, {**manifest_for(pipe), "metrics": {"pipeline": {"recall@10": 0.6}}},
                          tmp_path / "other")
    assert Pipeline.load(again).digest != loaded.digest  # same version name, other content: another address


def test_artifact_files_are_readable_like_any_output(small_split: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    import os
    import stat

    pipe = build(small_split[0])
    for umask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750)):
        before = os.umask(umask)
        try:
            out = save_artifact(pipe.parts, manifest_for(pipe), tmp_path / f"a{umask:o}")
        finally:
            os.umask(before)
        modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
        assert {rel: m for rel, m in modes.items() if (out / rel).is_file() and m != file_mode} == {}
        assert {rel: m for rel, m in modes.items() if (out / rel).is_dir() and m != dir_mode} == {}
        assert stat.S_IMODE(out.stat().st_mode) == dir_mode


def test_a_signing_key_requires_a_valid_signature(saved: tuple[Pipeline, Path], small_split: tuple[Dataset, Dataset],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ArtifactError, match="SIGNATURE: missing, and an artifact key is set"):
        Pipeline.load(saved[1], key=b"operator-secret")
    monkeypatch.setenv("RANKSTACK_ARTIFACT_KEY", "operator-secret")
    pipe = build(small_split[0])
    signed = save_artifact(pipe.parts, manifest_for(pipe), tmp_path / "signed")
    assert (signed / "SIGNATURE").is_file() and Pipeline.load(signed).digest
    monkeypatch.setenv("RANKSTACK_ARTIFACT_KEY", "another-key")
    with pytest.raises(ArtifactError, match="SIGNATURE: the signature does not match"):
        Pipeline.load(signed)
    monkeypatch.delenv("RANKSTACK_ARTIFACT_KEY")
    key_file = tmp_path / "key"
    key_file.write_text("operator-secret\n")
    monkeypatch.setenv("RANKSTACK_ARTIFACT_KEY_FILE", str(key_file))
    assert Pipeline.load(signed).digest == json.loads((signed / "manifest.json").read_text())["digest"]


def test_corrupt_weights_are_refused(saved: tuple[Pipeline, Path], tmp_path: Path) -> None:
    root = _copy(saved[1], tmp_path)
    weights = root / "sources" / "itemknn" / "tensors.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"itemknn/tensors\.safetensors: checksum mismatch"):
        Pipeline.load(root)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda r: (r / "manifest.json").unlink(), "manifest.json: missing"),
    (lambda r: (r / "manifest.json").write_text("{not json"), "unreadable manifest"),
    (lambda r: (r / "histories.safetensors").unlink(), "histories.safetensors: missing from the artifact"),
    (lambda r: _edit_manifest(r, format="rankstack.pipeline/3"), "incompatible"),
    (lambda r: _edit_manifest(r, format="rankstack.pipeline/1"), "incompatible .* train it again"),
    (lambda r: _edit_manifest(r, format="something-else/1"), "not a rankstack pipeline artifact"),
    (lambda r: _edit_manifest(r, config={"sources": [{"name": "teleporter"}]}), "incompatible artifact"),
    (lambda r: _edit_manifest(r, files={}), "field 'files'"),
    (lambda r: _edit_manifest(r, components={"sources": {"popular": "../../elsewhere"}, "fallback": "fallback"}),
     "outside the artifact"),
    (lambda r: _edit_manifest(r, components=[]), "field 'components' is malformed"),
    (lambda r: _edit_raw(r, digest=None), "field 'digest' is missing or malformed"),
    (lambda r: _edit_manifest(r, components={"sources": {"popular": "/etc"}, "fallback": "fallback"}),
     "outside the artifact"),
    (lambda r: _edit_raw(r, digest="sha256:" + "0" * 64), "manifest was changed after the artifact was written"),
    (lambda r: _edit_manifest(r, files={**_files(r), "../outside.bin": "0" * 64}), "outside the artifact"),
    (lambda r: _edit_manifest(r, files={**_files(r), "/etc/hostname": "0" * 64}), "outside the artifact"),
    (lambda r: (r / "sources" / "stray.json").write_text("{}"), r"not listed in the manifest: sources/stray\.json"),
    (lambda r: _relink(r, "histories.safetensors"), "symbolic link"),
])
def test_broken_artifacts_are_refused(saved: tuple[Pipeline, Path], tmp_path: Path, damage: object,
                                      message: str) -> None:
    root = _copy(saved[1], tmp_path)
    damage(root)  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=message):
        Pipeline.load(root)


def test_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a rankstack pipeline artifact"):
        Pipeline.load(tmp_path / "nothing-here")


def test_an_indexed_source_is_served_from_its_index_after_loading(small_split: tuple[Dataset, Dataset],
                                                                   tmp_path: Path) -> None:
    from rankstack.retrieval.indexed import IndexedRetriever

    source = {"name": "lightgcn", "k": 15, "index": {"kind": "exact"}, "settings": {
        "epochs": 3, "batch_size": 128, "embedding_dim": 8, "validation_ratio": 0.0, "device": "cpu"}}
    pipe = build(small_split[0], sources=[{"name": "popular", "k": 15, "quota": 5}, source])
    save_artifact(pipe.parts, manifest_for(pipe), tmp_path / "a")
    loaded = Pipeline.load(tmp_path / "a")
    assert isinstance(loaded.retrievers["lightgcn"], IndexedRetriever)
    reqs = [RecommendRequest(user_id=u, k=5, request_id=u) for u in ("u2", "u3")]
    assert [[i.item_id for i in r.items] for r in loaded.recommend(reqs)] == \
        [[i.item_id for i in r.items] for r in pipe.recommend(reqs)]


def test_an_ann_index_is_saved_in_the_artifact_and_read_not_rebuilt(small_split: tuple[Dataset, Dataset],
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    from rankstack.index.faiss_index import FaissIVFFlatIndex
    from rankstack.pipeline.config import IndexStage
    from rankstack.retrieval.indexed import IndexedRetriever

    index = {"kind": "ivf-flat", "params": {"nlist": 1, "nprobe": 1}}
    source = {"name": "lightgcn", "k": 15, "index": index, "settings": {
        "epochs": 3, "batch_size": 128, "embedding_dim": 8, "validation_ratio": 0.0, "device": "cpu"}}
    pipe = build(small_split[0], sources=[{"name": "popular", "k": 15, "quota": 5}, source])
    save_artifact(pipe.parts, manifest_for(pipe), tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["components"]["indexes"] == {"lightgcn": "indexes/lightgcn"}
    assert "indexes/lightgcn/ivf.faiss" in manifest["files"]

    def no_training(self: FaissIVFFlatIndex, vectors: object) -> FaissIVFFlatIndex:
        raise AssertionError("the saved index should be read, not trained again")

    monkeypatch.setattr(FaissIVFFlatIndex, "add", no_training)
    loaded = Pipeline.load(tmp_path / "a")
    assert isinstance(loaded.retrievers["lightgcn"], IndexedRetriever)
    reqs = [RecommendRequest(user_id=u, k=5, request_id=u) for u in ("u2", "u3")]
    assert [[i.item_id for i in r.items] for r in loaded.recommend(reqs)] == \
        [[i.item_id for i in r.items] for r in pipe.recommend(reqs)]
    monkeypatch.undo()
    exact = {"index": IndexStage(kind="exact")}
    other = loaded.config.sources[1].model_copy(update=exact)
    rebuilt = loaded.with_config(loaded.config.model_copy(update={"sources": [loaded.config.sources[0], other]}))
    assert rebuilt.retrievers["lightgcn"].index.is_exact()  # type: ignore[attr-defined]
    (tmp_path / "a" / "indexes" / "lightgcn" / "ivf.faiss").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"ivf\.faiss: checksum mismatch"):
        Pipeline.load(tmp_path / "a")
