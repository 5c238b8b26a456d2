"""Versioned pipeline artifacts: written to a temp directory then renamed; content-addressed and verified on load
(the digest, confined paths and the optional signature: ``rankstack.pipeline.integrity``).

Layout::

    manifest.json             format, version, config, data checksum, code version, machine, metrics, files
                              (every other file's SHA-256), digest (sha256 of the manifest's canonical JSON)
    SIGNATURE                 HMAC of the digest, only when written with an operator key set
    sources/<name>/           each fitted candidate source (safetensors + JSON, rankstack.retrieval.source_files)
    ranker/                   the ranker, as its ``save`` writes it (read back by the class the ``ranker``
                              component of the config's ``ranker.kind`` names); a sequential ranker that is one
                              of the sources is not written twice (the manifest points at its folder)
    fallback/                 the most-popular source behind the popularity fallback
    user_map.parquet          external ids, row i = internal id i
    item_map.parquet
    histories.safetensors     each known user's training sequence (``items`` split by ``indptr``)
    catalog.parquet           item attributes for filters, rules and the value model (when the data has them)
    indexes/<name>/           the vector index of each source with an ``index`` stage (FAISS files; an exact
                              index has none: it is rebuilt from the source's item vectors)
    policy/                   the learning exploration stage (learning policies only): features.safetensors (user
                              and item vectors) and state.safetensors (statistics from the training log, when it has
                              impressions); what it learns online lives in the state store
                              (rankstack.pipeline.online_policy)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file

from rankstack.data.idmap import IdMap
from rankstack.errors import ArtifactError, ConfigError
from rankstack.index import VectorIndex
from rankstack.io import atomic_write, current_umask, sha256_file
from rankstack.pipeline import components
from rankstack.pipeline.config import IndexStage, PipelineConfig, validate_pipeline_config
from rankstack.pipeline.integrity import MANIFEST, artifact_key, listed_path, seal, verify_artifact
from rankstack.pipeline.online_policy import PolicyFeatures
from rankstack.pipeline.parts import PipelineParts, new_index, source_index
from rankstack.ranking.ranker import StoredRanker
from rankstack.reranking.catalog import ItemCatalog
from rankstack.retrieval.indexed import VectorSource
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource
from rankstack.retrieval.source_files import load_source, save_source

# /2: the manifest carries its content digest and the file list is the whole artifact (/1 had neither)
FORMAT = "rankstack.pipeline/2"


def _save_histories(path: Path, histories: list[np.ndarray]) -> None:
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
    with atomic_write(path) as tmp:
        save_file({"indptr": torch.from_numpy(indptr), "items": torch.from_numpy(items)}, str(tmp))


def _load_histories(path: Path) -> list[np.ndarray]:
    tensors = load_file(str(path))
    indptr, items = tensors["indptr"].numpy(), tensors["items"].numpy()
    return [items[indptr[u]: indptr[u + 1]] for u in range(len(indptr) - 1)]


def _read_source(folder: Path) -> CandidateSource:
    """A saved candidate source, its class found in the component registry."""
    return load_source(folder, components.source_class)


def _write_parts(parts: PipelineParts, root: Path) -> dict[str, Any]:
    """Write every component under ``root``; returns the manifest's ``components`` entry."""
    components: dict[str, Any] = {"sources": {}, "ranker": None, "fallback": "fallback"}
    for name, source in parts.sources.items():
        save_source(source, root / "sources" / name)
        components["sources"][name] = f"sources/{name}"
    if parts.ranker is not None:
        components["ranker"] = parts.ranker.save(root, parts.sources)
    save_source(parts.fallback, root / "fallback")
    parts.user_map.save(root / "user_map.parquet")
    parts.item_map.save(root / "item_map.parquet")
    _save_histories(root / "histories.safetensors", parts.histories)
    if parts.catalog is not None:
        with atomic_write(root / "catalog.parquet") as tmp:
            parts.catalog.table.write_parquet(tmp)
    components["indexes"] = _write_indexes(parts, root)
    if parts.policy is not None:
        parts.policy.save(root / "policy")
        components["policy"] = "policy"
    return components


def _write_indexes(parts: PipelineParts, root: Path) -> dict[str, str]:
    """Save the index of every source whose stage asks for one (built now unless the parts already hold it)."""
    out = {}
    for stage in parts.config.sources:
        if stage.index is not None:
            source_index(parts, stage).write(root / "indexes" / stage.name)
            out[stage.name] = f"indexes/{stage.name}"
    return out


def _read_indexes(root: Path, config: PipelineConfig, sources: dict[str, CandidateSource],
                  components: dict[str, str]) -> dict[str, tuple[IndexStage, VectorIndex]]:
    """The saved indexes, each read over its source's item vectors (older artifacts have none: built at load)."""
    out: dict[str, tuple[IndexStage, VectorIndex]] = {}
    for stage in config.sources:
        rel = components.get(stage.name)
        source = sources.get(stage.name)
        if stage.index is None or rel is None or not isinstance(source, VectorSource):
            continue
        try:
            index = new_index(stage.index, stage.name).read(root / rel, source.item_vectors())
        except (ValueError, ConfigError) as exc:
            raise ArtifactError(f"{root / rel}: cannot read the {stage.index.kind} index ({exc})") from None
        out[stage.name] = (stage.index, index)
    return out


def save_artifact(parts: PipelineParts, manifest: dict[str, Any], out: Path, *, overwrite: bool = False) -> Path:
    """Write the artifact into a temp directory beside ``out`` and rename it into place; returns ``out``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ArtifactError(f"{out}: already exists (pass overwrite / --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; an artifact is shared like any output
        components = _write_parts(parts, tmp)
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        record = {"format": FORMAT, **manifest, "components": components, "files": files}
        seal(tmp, record, key=artifact_key())
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of an artifact directory, checked for format (``ArtifactError`` otherwise)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (not a rankstack pipeline artifact)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: the manifest is not a JSON object")
    fmt = manifest.get("format")
    if not isinstance(fmt, str) or fmt.split("/")[0] != FORMAT.split("/")[0]:
        raise ArtifactError(f"{path}: field 'format': {fmt!r} is not a rankstack pipeline artifact")
    if fmt != FORMAT:
        why = " (written before artifacts were content-addressed: train it again)" if fmt.endswith("/1") else ""
        raise ArtifactError(f"{path}: field 'format': artifact format {fmt!r} is incompatible with {FORMAT!r}{why}")
    for key in ("version", "config", "files", "components", "digest"):
        if key not in manifest:
            raise ArtifactError(f"{path}: missing field {key!r}")
    return manifest


def check_artifact(root: Path, *, key: bytes | None = None) -> str:
    """Verify an artifact without loading it (manifest, digest, files, signature with ``key`` or the operator's
    key); returns its digest (``ArtifactError`` on any problem)."""
    root = Path(root)
    return verify_artifact(root, read_manifest(root), key=key if key is not None else artifact_key())


def _check_inside(root: Path, components: Any) -> None:
    """Every component path stays inside the artifact (a manifest cannot point the loader elsewhere)."""
    if not isinstance(components, dict) or not isinstance(components.get("sources"), dict):
        raise ArtifactError(f"{root / MANIFEST}: field 'components' is malformed")
    indexes = components.get("indexes", {})
    if not isinstance(indexes, dict):
        raise ArtifactError(f"{root / MANIFEST}: field 'components.indexes' is malformed")
    paths = [*components["sources"].values(), *indexes.values(), components.get("ranker"), components.get("fallback"),
             components.get("policy")]
    for rel in paths:
        if rel is not None:
            listed_path(root, rel, "components")


def load_artifact(root: Path, *, key: bytes | None = None) -> PipelineParts:
    """Verify and load an artifact directory into ``PipelineParts`` (``ArtifactError`` on any problem); ``key``
    (default: the operator's, ``integrity.artifact_key``) requires a valid signature."""
    root = Path(root)
    manifest = read_manifest(root)
    verify_artifact(root, manifest, key=key if key is not None else artifact_key())
    try:
        config = validate_pipeline_config(manifest["config"], f"{root / MANIFEST} config")
    except ConfigError as exc:
        raise ArtifactError(f"incompatible artifact: {exc}") from None
    comps = manifest["components"]
    _check_inside(root, comps)
    current = "?"
    try:
        current = "sources"
        sources = {name: _read_source(root / rel) for name, rel in comps["sources"].items()}
        current = "ranker"
        ranker: StoredRanker | None = None
        if comps.get("ranker") and config.ranker is not None:
            ranker = components.resolve("ranker", config.ranker.kind).load(root, comps["ranker"], sources,
                                                                            _read_source)
        current = "fallback"
        fallback = _read_source(root / comps["fallback"])
        if not isinstance(fallback, MostPopular):
            raise ArtifactError(f"{root / comps['fallback']}: the fallback must be the most-popular source")
        current = "id maps"
        name = str(manifest.get("data", {}).get("name", "artifact"))
        user_map = IdMap.load(root / "user_map.parquet", name=f"{name}:user_id")
        item_map = IdMap.load(root / "item_map.parquet", name=f"{name}:item_id")
        current = "histories"
        histories = _load_histories(root / "histories.safetensors")
        current = "catalog"
        catalog = None
        if (root / "catalog.parquet").is_file():
            catalog = ItemCatalog(pl.read_parquet(root / "catalog.parquet"), len(item_map), item_map)
        current = "vector indexes"
        indexes = _read_indexes(root, config, sources, comps.get("indexes", {}))
        current = "policy features"
        policy = None
        if config.exploration.learns:
            if not comps.get("policy"):
                raise ArtifactError(f"{root}: exploration.policy {config.exploration.policy!r} learns online but the "
                                    "artifact has no policy features (train it again)")
            policy = PolicyFeatures.load(root / comps["policy"], len(user_map), len(item_map))
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{root}: cannot load the {current} ({type(exc).__name__}: {exc})") from None
    for label, source in [*sources.items(), ("fallback", fallback)]:
        shape = source._require_fitted().shape
        if shape != (len(user_map), len(item_map)):
            raise ArtifactError(f"{root}: {label} was trained on {shape}, the id maps say "
                                f"{(len(user_map), len(item_map))}")
    for label, frame, n in (("user", getattr(ranker, "user_features", None), len(user_map)),
                            ("item", getattr(ranker, "item_features", None), len(item_map))):
        if frame is not None and frame.height != n:
            raise ArtifactError(f"{root / comps['ranker']}: {label} features have {frame.height} rows, "
                                f"the id maps say {n}")
    if len(histories) != len(user_map):
        raise ArtifactError(f"{root / 'histories.safetensors'}: {len(histories)} users, expected {len(user_map)}")
    return PipelineParts(config=config, sources=sources, fallback=fallback, user_map=user_map, item_map=item_map,
                         histories=histories, ranker=ranker, catalog=catalog, manifest=manifest, indexes=indexes,
                         policy=policy)
