"""Save and load a fitted multi-task ranker: weights as safetensors, config / encoder / calibrators as JSON.

Layout of the folder::

    ranker.json          config, fitted feature encoder, calibrators, training history, format version
    weights.safetensors  the network's state dict

Nothing is unpickled: loading rebuilds the network from the config and the encoder, then reads tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from rankstack.evaluation.fit_summary import FitSummary
from rankstack.io import atomic_write, write_text_atomic
from rankstack.ranking.calibration import calibrator_from_dict
from rankstack.ranking.impression_features import FeatureEncoder
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

FORMAT = 1


def save_ranker(ranker: MultiTaskRanker, directory: str | Path) -> Path:
    """Write a fitted ranker to ``directory``; returns the folder."""
    if ranker.net_ is None or ranker.encoder_ is None:
        raise RuntimeError("MultiTaskRanker is not fitted: nothing to save")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in ranker.net_.state_dict().items()}
    with atomic_write(out / "weights.safetensors") as tmp:
        save_file(state, str(tmp))
    meta = {
        "format": FORMAT, "config": ranker.config.model_dump(mode="json"), "encoder": ranker.encoder_.to_dict(),
        "calibrators": {k: v.to_dict() for k, v in ranker.calibrators_.items()}, "history": ranker.history_,
        "fit_summary": None if ranker.fit_summary_ is None else ranker.fit_summary_.to_json(),
    }
    write_text_atomic(out / "ranker.json", json.dumps(meta, indent=1) + "\n")
    return out


def load_ranker(directory: str | Path, device: str | None = None) -> MultiTaskRanker:
    """Read a ranker written by :func:`save_ranker` (on ``device``, default: CUDA when present)."""
    src = Path(directory)
    meta = json.loads((src / "ranker.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{src}: unsupported ranker format {meta.get('format')!r} (expected {FORMAT})")
    config = MultiTaskConfig.model_validate({**meta["config"], "device": device})
    ranker = MultiTaskRanker(config)
    ranker.encoder_ = FeatureEncoder.from_dict(meta["encoder"])
    state = load_file(str(src / "weights.safetensors"))
    value_scale = float(state["value_scale"]) if "value_scale" in state else 1.0
    net = ranker.new_net(ranker.encoder_, value_scale)
    net.load_state_dict(state)
    ranker.net_ = net.to(ranker.device)
    ranker.calibrators_ = {k: calibrator_from_dict(v) for k, v in meta["calibrators"].items()}
    ranker.history_ = meta["history"]
    ranker.fit_summary_ = FitSummary.from_json(meta.get("fit_summary"))
    return ranker
