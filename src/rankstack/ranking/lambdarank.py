"""A learned candidate ranker: a LightGBM LambdaRank model over :mod:`rankstack.ranking.candidate_features`.

``score(batch)`` → ``{"relevance": [B, C]}`` (NaN on pads): the trees' sum, plus the prior ``-log2(1 + rank)``
of a ``base`` source when there is one (the model then learns corrections to that source's order). Fitted by
``rankstack.ranking.lambdarank_train``; saved without pickle as a folder::

    model.txt           LightGBM's text model format
    ranker.json         format, feature names, sources, settings, the model's SHA-256, training report
    stats.safetensors   the item statistics the features read (``ItemStats``)
    sequential/         the sequential model whose score is a feature (when there is one and it is not a source)

Loading checks the model text against its recorded SHA-256 before LightGBM parses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import ArtifactError
from rankstack.io import write_text_atomic
from rankstack.ranking.candidate_features import ItemStats, candidate_features, feature_names, unit_rows
from rankstack.ranking.ranker import RankBatch
from rankstack.retrieval.source import CandidateSource
from rankstack.sequential.state_cache import StateCache

RELEVANCE = "relevance"  # the one objective: the model's ranking score of each candidate
FORMAT = 2  # 2: transition and last-item features, optional embedding features (a format-1 ranker: retrain)
MODEL_FILE, META_FILE, STATS_FILE = "model.txt", "ranker.json", "stats.safetensors"


MISSING_RANK = 1000.0  # the prior's rank of a candidate the base source did not propose


def prior_scores(features: np.ndarray, names: Sequence[str], base: str | None) -> np.ndarray:
    """The starting score the trees add to: ``-log2(1 + rank)`` of each row by source ``base`` (rank
    ``MISSING_RANK`` where it did not propose the item), so the model begins at that source's order; zeros
    without a base."""
    if base is None:
        return np.zeros(len(features))
    rank = features[:, list(names).index(f"rank_{base}")].astype(np.float64)
    return -np.log2(1.0 + np.where(np.isnan(rank), MISSING_RANK, rank))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CandidateFeatureRanker:
    """What the learned candidate rankers share: the inputs of :func:`candidate_features` (sources, item
    statistics, sequential scorer, embedding source), their checks, and the protocol's stateless methods."""

    name: str  # the subclass's ranker name (in logs and errors)
    objectives: tuple[str, ...] = (RELEVANCE,)
    needs_history = False
    recency = False

    @property
    def needs_times(self) -> bool:
        """Whether the ranker reads request times and the users' fresh event times (the recency feature)."""
        return self.recency

    def _set_feature_inputs(self, sources: Sequence[str], stats: ItemStats, *, last_n: int,
                            sequential: CandidateSource | None, report: dict[str, Any] | None, base: str | None,
                            embedding: str | None, recency: bool = False) -> None:
        """Keep the feature inputs and check that ``base`` and ``embedding`` name sources."""
        self.sources = list(sources)
        self.stats = stats
        self.last_n = last_n
        self.sequential = sequential
        self.report = report or {}
        self.base = base
        self.embedding = embedding
        self.recency = recency
        self._vectors: tuple[int, np.ndarray | None] = (0, None)
        self.feature_names = feature_names(self.sources, sequential is not None, embedding is not None, recency)
        for role, name in (("base", base), ("embedding", embedding)):
            if name is not None and name not in self.sources:
                raise ValueError(f"{role} source {name!r} is not among the sources {self.sources}")

    def _item_vectors(self, sources: Mapping[str, CandidateSource]) -> np.ndarray | None:
        """The embedding source's unit item vectors, computed once per source object."""
        if self.embedding is None:
            return None
        source = sources.get(self.embedding)
        if source is None:
            raise ValueError(f"{self.name}: the batch carries no source {self.embedding!r} for the embedding "
                             "features")
        if self._vectors[0] != id(source) or self._vectors[1] is None:
            self._vectors = (id(source), embedding_vectors(sources, self.embedding))
        return self._vectors[1]

    def features(self, batch: RankBatch) -> tuple[np.ndarray, np.ndarray]:
        """The feature matrix of the batch's valid candidates and their mask [B, C] (the training code path)."""
        return candidate_features(batch, self.stats, self.sources, last_n=self.last_n,
                                  seq_scores=sequential_scores(self.sequential, batch),
                                  item_vectors=self._item_vectors(batch.sources), recency=self.recency)

    @property
    def state_cache(self) -> StateCache | None:
        """The sequential scorer's user-state cache (None without one)."""
        cache = getattr(self.sequential, "state_cache", None)
        return cache if isinstance(cache, StateCache) else None

    def keep_states(self, capacity: int) -> None:
        """Cache the sequential scorer's user states when it can (a no-op otherwise)."""
        enable = getattr(self.sequential, "enable_state_cache", None)
        if callable(enable):
            enable(capacity)

    def warm(self, histories: Sequence[np.ndarray]) -> int:
        """Nothing is computed ahead of requests."""
        return 0

    def _feature_meta(self, folder: Path, sources: Mapping[str, CandidateSource]) -> dict[str, Any]:
        """Write the feature inputs into ranker ``folder`` (:func:`save_feature_inputs`); their ``ranker.json``
        entries."""
        seq = save_feature_inputs(folder, self.stats, self.sequential, sources)
        return {"sources": self.sources, "features": self.feature_names, "last_n": self.last_n, "sequential": seq,
                "base": self.base, "embedding": self.embedding, "recency": self.recency, "report": self.report}

    def _check_saved_features(self, meta: Mapping[str, Any], path: Path) -> None:
        """``ArtifactError`` when the saved feature list differs from the one this code builds."""
        if self.feature_names != meta["features"]:
            raise ArtifactError(f"{path}: features {meta['features']} differ from the code's {self.feature_names}")


class LambdaRankRanker(CandidateFeatureRanker):
    """A fitted LightGBM ranking model with the item statistics and sequential scorer its features need."""

    name = "lambdarank"

    def __init__(self, model_text: str, sources: Sequence[str], stats: ItemStats, *, last_n: int = 20,
                 sequential: CandidateSource | None = None, report: dict[str, Any] | None = None,
                 threads: int = 1, base: str | None = None, embedding: str | None = None,
                 recency: bool = False) -> None:
        import lightgbm

        self.model_text = model_text
        self.booster = lightgbm.Booster(model_str=model_text)
        self.threads = threads
        self._set_feature_inputs(sources, stats, last_n=last_n, sequential=sequential, report=report, base=base,
                                 embedding=embedding, recency=recency)
        if self.booster.num_feature() != len(self.feature_names):
            raise ValueError(f"the model reads {self.booster.num_feature()} features, the ranker builds "
                             f"{len(self.feature_names)} ({self.feature_names})")

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        """The model's scores [B, C]; NaN on pads."""
        out = np.full(batch.item_ids.shape, np.nan)
        matrix, valid = self.features(batch)
        if len(matrix):
            out[valid] = self.booster.predict(matrix, num_threads=self.threads) + \
                prior_scores(matrix, self.feature_names, self.base)
        return {RELEVANCE: out}

    def importances(self) -> dict[str, float]:
        """Total gain per feature, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.feature_names, gain.tolist(), strict=True), key=lambda p: -p[1])
        return {name: round(float(value), 3) for name, value in pairs}

    def save(self, root: Path, sources: Mapping[str, CandidateSource]) -> str:
        """Write the ranker into ``root/ranker``; a sequential scorer that is one of ``sources`` is not repeated."""
        folder = root / "ranker"
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / MODEL_FILE, self.model_text)
        meta = {"format": FORMAT, "model_sha256": _sha256(self.model_text), **self._feature_meta(folder, sources)}
        write_text_atomic(folder / META_FILE, json.dumps(meta, indent=1) + "\n")
        return "ranker"

    @classmethod
    def load(cls, root: Path, rel: str, sources: Mapping[str, CandidateSource],
             read_source: Callable[[Path], CandidateSource]) -> LambdaRankRanker:
        """The ranker :meth:`save` wrote at ``root/rel`` (``ArtifactError`` when its model fails its checksum)."""
        folder = root / rel
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise ArtifactError(f"{folder / META_FILE}: lambdarank format {found!r:.40}, this version reads {FORMAT} "
                                "(retrain the pipeline: the features changed)")
        text = (folder / MODEL_FILE).read_text(encoding="utf-8")
        if _sha256(text) != meta["model_sha256"]:
            raise ArtifactError(f"{folder / MODEL_FILE}: SHA-256 differs from ranker.json's model_sha256")
        ranker = cls(text, [str(s) for s in meta["sources"]], ItemStats.load(folder / STATS_FILE),
                     **feature_settings(meta, root, sources, read_source))
        ranker._check_saved_features(meta, folder / META_FILE)
        return ranker


def save_feature_inputs(folder: Path, stats: ItemStats, sequential: CandidateSource | None,
                        sources: Mapping[str, CandidateSource]) -> str | None:
    """Write what the candidate features read besides the request into ranker ``folder``: ``stats.safetensors``
    and the sequential scorer (unless it is one of ``sources``); returns the scorer's path relative to the
    artifact root (``sources/<name>`` or ``ranker/sequential``), None without one."""
    from rankstack.retrieval.source_files import save_source

    stats.save(folder / STATS_FILE)
    if sequential is None:
        return None
    shared = next((n for n, s in sources.items() if s is sequential), None)
    if shared is not None:
        return f"sources/{shared}"
    save_source(sequential, folder / "sequential")
    return f"{folder.name}/sequential"


def feature_settings(meta: Mapping[str, Any], root: Path, sources: Mapping[str, CandidateSource],
                     read_source: Callable[[Path], CandidateSource]) -> dict[str, Any]:
    """The keyword settings of a candidate-feature ranker from the ``ranker.json`` entries ``_feature_meta`` wrote
    (its sequential scorer read back)."""
    return {"last_n": int(meta["last_n"]), "sequential": load_sequential(root, meta.get("sequential"), sources,
                                                                          read_source),
            "report": meta.get("report") or {}, "base": meta.get("base"), "embedding": meta.get("embedding"),
            "recency": bool(meta.get("recency", False))}


def load_sequential(root: Path, rel: object, sources: Mapping[str, CandidateSource],
                    read_source: Callable[[Path], CandidateSource]) -> CandidateSource | None:
    """The sequential scorer :func:`save_feature_inputs` recorded as ``rel`` (None when there is none)."""
    if not isinstance(rel, str):
        return None
    name = rel.removeprefix("sources/")
    return sources[name] if rel.startswith("sources/") and name in sources else read_source(root / rel)


def embedding_vectors(sources: Mapping[str, CandidateSource], name: str | None) -> np.ndarray | None:
    """Unit rows of source ``name``'s item vectors as float64 numpy (None without a name)."""
    if name is None:
        return None
    vectors = getattr(sources[name], "item_vectors", None)
    if not callable(vectors):
        raise ValueError(f"lambdarank embedding: source {name!r} has no item vectors (als, two-tower, lightgcn do)")
    table = vectors()
    return unit_rows(table.detach().cpu().numpy() if hasattr(table, "detach") else np.asarray(table))


def sequential_scores(model: CandidateSource | None, batch: RankBatch) -> np.ndarray | None:
    """The sequential model's scores [B, C] of the candidates given each row's history (NaN: no history, pads)."""
    if model is None:
        return None
    from rankstack.ranking.sequential import SequentialRanker

    return SequentialRanker(model).score(batch)["next_item"]
