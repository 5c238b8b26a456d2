"""Artifact integrity: a content address over the manifest and every file, confined paths, optional signature.

The manifest's ``digest`` is ``sha256:<hex>`` of the manifest itself in canonical JSON (keys sorted, no spaces,
the ``digest`` field left out); the manifest lists every file's SHA-256 under ``files``, so the digest covers
every byte of the artifact. Loading recomputes it and refuses an artifact whose manifest was edited, whose files
differ from the listed hashes, which holds a file the manifest does not list (anywhere in its tree), or whose
listed paths are absolute, contain ``..`` or are symbolic links.

The digest detects changes, not a deliberate forger (who can recompute it). For that an operator sets a secret
key in ``$RANKSTACK_ARTIFACT_KEY`` (or a file named by ``$RANKSTACK_ARTIFACT_KEY_FILE``): artifacts written with
the key carry ``SIGNATURE`` (HMAC-SHA256 of the digest), and with the key set every load requires a valid one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from rankstack.errors import ArtifactError
from rankstack.io import sha256_file, write_text_atomic

MANIFEST = "manifest.json"
SIGNATURE = "SIGNATURE"
DIGEST_FIELD = "digest"
KEY_ENV = "RANKSTACK_ARTIFACT_KEY"
KEY_FILE_ENV = "RANKSTACK_ARTIFACT_KEY_FILE"
UNLISTED_OK = frozenset({MANIFEST, SIGNATURE})


def manifest_digest(manifest: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the manifest's canonical JSON without its ``digest`` field."""
    body = {k: v for k, v in manifest.items() if k != DIGEST_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def artifact_key() -> bytes | None:
    """The operator's signing key: ``$RANKSTACK_ARTIFACT_KEY``, else the file ``$RANKSTACK_ARTIFACT_KEY_FILE``."""
    if value := os.environ.get(KEY_ENV):
        return value.encode("utf-8")
    if path := os.environ.get(KEY_FILE_ENV):
        try:
            key = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ArtifactError(f"{path} (${KEY_FILE_ENV}): cannot read the artifact key ({exc.strerror})") from None
        if not key:
            raise ArtifactError(f"{path} (${KEY_FILE_ENV}): the artifact key file is empty")
        return key
    return None


def signature(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of ``digest`` under ``key``, hex."""
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def seal(root: Path, record: dict[str, Any], *, key: bytes | None = None) -> dict[str, Any]:
    """Write ``record`` as ``root/manifest.json`` with its ``digest`` (and ``SIGNATURE`` with ``key``); returns it."""
    record = json.loads(json.dumps(record, default=str))  # what a reader will see (dates as strings, …)
    record.pop(DIGEST_FIELD, None)
    record[DIGEST_FIELD] = manifest_digest(record)
    write_text_atomic(root / MANIFEST, json.dumps(record, indent=2) + "\n")
    if key is not None:
        write_text_atomic(root / SIGNATURE, signature(key, record[DIGEST_FIELD]) + "\n")
    return record


def listed_path(root: Path, rel: object, field: str) -> Path:
    """``root / rel`` for a relative path that stays inside ``root`` (``ArtifactError`` naming ``field`` otherwise)."""
    where = f"{root / MANIFEST}: field {field!r}"
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        raise ArtifactError(f"{where}: {rel!r} is not a relative path inside the artifact")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(part in ("..", ".") for part in rel.split("/")) or str(pure) != rel:
        raise ArtifactError(f"{where}: {rel!r} is outside the artifact (absolute, '..' or not normalised)")
    path = root / rel
    for parent in [*reversed(PurePosixPath(rel).parents), pure]:
        if str(parent) != "." and (root / parent).is_symlink():
            raise ArtifactError(f"{where}: {root / parent} is a symbolic link (artifacts hold plain files only)")
    return path


def _tree(root: Path) -> set[str]:
    """Every plain file under ``root``, relative and '/'-separated; a link or special file is an error."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                raise ArtifactError(f"{path}: a symbolic link inside the artifact (artifacts hold plain files only)")
        for name in files:
            path = Path(folder) / name
            if not path.is_file():
                raise ArtifactError(f"{path}: not a plain file")
            found.add(path.relative_to(root).as_posix())
    return found


def verify_artifact(root: Path, manifest: dict[str, Any], *, key: bytes | None = None) -> str:
    """Check the digest, the signature (with ``key``), the file list and every file's hash; returns the digest."""
    path = root / MANIFEST
    recorded = manifest.get(DIGEST_FIELD)
    if not isinstance(recorded, str) or not recorded.startswith("sha256:"):
        raise ArtifactError(f"{path}: field {DIGEST_FIELD!r} is missing or malformed (expected 'sha256:<hex>')")
    actual = manifest_digest(manifest)
    if not hmac.compare_digest(actual, recorded):
        raise ArtifactError(f"{path}: the manifest was changed after the artifact was written (its content digest "
                            f"is {actual}, field {DIGEST_FIELD!r} records {recorded})")
    if key is not None:
        _check_signature(root, key, recorded)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{path}: field 'files' must list the artifact's files")
    listed = {rel: listed_path(root, rel, "files") for rel in files}
    present = _tree(root)
    unlisted = sorted(present - set(listed) - UNLISTED_OK)
    if unlisted:
        more = f" and {len(unlisted) - 3} more" if len(unlisted) > 3 else ""
        raise ArtifactError(f"{root}: files not listed in the manifest: {', '.join(unlisted[:3])}{more} (an "
                            "artifact holds exactly the files its manifest lists)")
    for rel, file in listed.items():
        if rel not in present:
            raise ArtifactError(f"{file}: missing from the artifact")
        if not hmac.compare_digest(sha256_file(file), str(files[rel])):
            raise ArtifactError(f"{file}: checksum mismatch (the file is corrupt or was changed)")
    return recorded


def _check_signature(root: Path, key: bytes, digest: str) -> None:
    """The artifact's ``SIGNATURE`` is the HMAC of ``digest`` under ``key`` (``ArtifactError`` otherwise)."""
    path = root / SIGNATURE
    if path.is_symlink() or not path.is_file():
        raise ArtifactError(f"{path}: missing, and an artifact key is set (${KEY_ENV} / ${KEY_FILE_ENV}): only "
                            "artifacts signed with that key are accepted")
    given = path.read_text(encoding="utf-8", errors="replace").strip()
    if not hmac.compare_digest(given, signature(key, digest)):
        raise ArtifactError(f"{path}: the signature does not match (signed with another key, or the artifact "
                            "was changed)")
