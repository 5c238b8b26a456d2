"""Save and load fitted candidate sources: tensors as safetensors, config and metadata as JSON, id maps as
Parquet. Nothing is pickled, so loading a directory someone hands you runs no code from it.

Layout of a saved source directory::

    source.json          {"format", "name", "config", "train_shape", "meta"}
    tensors.safetensors  learned state + the training matrix (CSR arrays, for excluding seen items)
    user_map.parquet     optional, when saved with a dataset
    item_map.parquet
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from rankstack.data.dataset import Dataset
from rankstack.data.idmap import IdMap
from rankstack.io import atomic_write, write_text_atomic
from rankstack.retrieval.ease import EASE
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource

FORMAT = "rankstack.source/1"
Tensors = dict[str, torch.Tensor]
Meta = dict[str, Any]


@runtime_checkable
class Persistable(Protocol):
    """A source that exports its own learned state (new models implement these two methods)."""

    def state_tensors(self) -> tuple[Tensors, Meta]:
        """Learned tensors and JSON-able metadata."""
        ...

    def load_state_tensors(self, tensors: Tensors, meta: Meta) -> None:
        """Restore learned state written by :meth:`state_tensors`."""
        ...


def csr_to_tensors(prefix: str, matrix: sp.csr_matrix) -> Tensors:
    """CSR arrays as tensors named ``<prefix>.indptr/.indices/.data``."""
    m = sp.csr_matrix(matrix)
    return {f"{prefix}.indptr": torch.from_numpy(m.indptr.astype(np.int64)),
            f"{prefix}.indices": torch.from_numpy(m.indices.astype(np.int64)),
            f"{prefix}.data": torch.from_numpy(m.data.astype(np.float32))}


def tensors_to_csr(prefix: str, tensors: Tensors, shape: tuple[int, int]) -> sp.csr_matrix:
    """Inverse of :func:`csr_to_tensors`."""
    return sp.csr_matrix((tensors[f"{prefix}.data"].numpy(), tensors[f"{prefix}.indices"].numpy(),
                          tensors[f"{prefix}.indptr"].numpy()), shape=shape)


def _popular_state(m: MostPopular) -> tuple[Tensors, Meta]:
    return {"item_counts": m.item_counts_}, {}


def _popular_load(m: MostPopular, t: Tensors, meta: Meta) -> None:
    m.item_counts_ = t["item_counts"]


def _itemknn_state(m: ItemKNN) -> tuple[Tensors, Meta]:
    return csr_to_tensors("similarity", m.similarity_), {}


def _itemknn_load(m: ItemKNN, t: Tensors, meta: Meta) -> None:
    n = m._require_fitted().shape[1]
    m.similarity_ = tensors_to_csr("similarity", t, (n, n))


def _ease_state(m: EASE) -> tuple[Tensors, Meta]:
    return {"weights": m.weights_.cpu()}, {}


def _ease_load(m: EASE, t: Tensors, meta: Meta) -> None:
    from rankstack.device import resolve_device

    m.device_ = resolve_device(m.config.device)
    m.weights_ = t["weights"].to(m.device_)


_ADAPTERS: dict[type, tuple[Callable[[Any], tuple[Tensors, Meta]], Callable[[Any, Tensors, Meta], None]]] = {
    MostPopular: (_popular_state, _popular_load),
    ItemKNN: (_itemknn_state, _itemknn_load),
    EASE: (_ease_state, _ease_load),
}


def _state(source: CandidateSource) -> tuple[Tensors, Meta]:
    if isinstance(source, Persistable):
        return source.state_tensors()
    if type(source) in _ADAPTERS:
        return _ADAPTERS[type(source)][0](source)
    raise TypeError(f"{type(source).__name__} does not support saving (implement state_tensors/load_state_tensors)")


def save_source(source: CandidateSource, directory: str | Path, *, dataset: Dataset | None = None) -> Path:
    """Write a fitted source (and, given its dataset, the id maps) to ``directory``; returns the directory."""
    train = source._require_fitted()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors, meta = _state(source)
    clash = set(tensors) & {"train.indptr", "train.indices", "train.data"}
    if clash:
        raise ValueError(f"state tensor names clash with the training matrix: {sorted(clash)}")
    payload = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    payload.update(csr_to_tensors("train", train))
    with atomic_write(out / "tensors.safetensors") as tmp:
        save_file(payload, str(tmp), metadata={"format": FORMAT, "name": source.name})
    record = {"format": FORMAT, "name": source.name, "config": source.config.model_dump(mode="json"),
              "train_shape": list(train.shape), "meta": meta}
    write_text_atomic(out / "source.json", json.dumps(record, indent=2) + "\n")
    if dataset is not None:
        dataset.user_map.save(out / "user_map.parquet")
        dataset.item_map.save(out / "item_map.parquet")
    return out


def load_source(directory: str | Path, source_class: Callable[[str], type[CandidateSource]], *,
                device: str | None = None) -> CandidateSource:
    """Rebuild a source written by :func:`save_source`; ``source_class`` maps the saved name to its class (the
    registry's ``rankstack.pipeline.components.source_class``); ``device`` overrides the saved config's."""
    src = Path(directory)
    record = json.loads((src / "source.json").read_text(encoding="utf-8"))
    if record.get("format") != FORMAT:
        raise ValueError(f"{src}: not a saved rankstack source (format {record.get('format')!r})")
    name = record["name"]
    try:
        cls = source_class(name)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from None
    config = dict(record["config"])
    if device is not None and "device" in config:
        config["device"] = device
    source = cls(cls.config_class.model_validate(config))
    tensors = load_file(str(src / "tensors.safetensors"))
    shape = (int(record["train_shape"][0]), int(record["train_shape"][1]))
    source.train_ = tensors_to_csr("train", tensors, shape)
    state = {k: v for k, v in tensors.items() if not k.startswith("train.")}
    if isinstance(source, Persistable):
        source.load_state_tensors(state, record.get("meta", {}))
    else:
        _ADAPTERS[cls][1](source, state, record.get("meta", {}))
    return source


def load_id_maps(directory: str | Path) -> tuple[IdMap, IdMap] | None:
    """(user map, item map) saved next to a source, or None when it was saved without a dataset."""
    src = Path(directory)
    if not (src / "user_map.parquet").exists():
        return None
    return IdMap.load(src / "user_map.parquet", name="user_id"), IdMap.load(src / "item_map.parquet", name="item_id")
