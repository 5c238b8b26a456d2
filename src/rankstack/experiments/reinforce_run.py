"""Train the sequential top-K REINFORCE policy from a served pipeline's event log or a simulated one
(``rankstack bandits reinforce``): the artifact's SASRec gives the user states, the log the impressions, clicks and
propensities."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankstack.bandits.reinforce_seq import SeqReinforceConfig, SeqReinforcePolicy
from rankstack.bandits.reinforce_seq_train import rows_from_arrays, train_seq_reinforce
from rankstack.errors import ConfigError
from rankstack.experiments.reinforce_log import (
    ServiceRows,
    dataset_events,
    read_service_rows,
    rows_from_events,
    sqlite_path,
)
from rankstack.ope.service_log import is_state_store
from rankstack.pipeline.artifact import load_artifact
from rankstack.pipeline.parts import PipelineParts
from rankstack.ranking.sequential import SequentialRanker
from rankstack.sequential.sasrec import SASRec

Log = Callable[[str], None]


def find_sasrec(parts: PipelineParts) -> SASRec:
    """The artifact's SASRec: the ranker's model, else a SASRec candidate source (ConfigError when none)."""
    ranker = parts.ranker
    if isinstance(ranker, SequentialRanker) and isinstance(ranker.source, SASRec):
        return ranker.source
    for source in parts.sources.values():
        if isinstance(source, SASRec):
            return source
    raise ConfigError("--artifact: the pipeline has no SASRec (as its ranker or a source) to give the user states")


def distinct_states(sasrec: SASRec, histories: list[np.ndarray]) -> np.ndarray:
    """SASRec states [n, D] of the histories, each distinct history run once (a slate's rows share one)."""
    index: dict[bytes, int] = {}
    rows = np.array([index.setdefault(h.tobytes(), len(index)) for h in histories], dtype=np.int64)
    firsts: dict[int, np.ndarray] = {}
    for h, at in zip(histories, rows.tolist(), strict=True):
        firsts.setdefault(at, h)
    return sasrec.user_states([firsts[i] for i in range(len(index))]).cpu().numpy()[rows]


def read_rows(parts: PipelineParts, source: str, max_len: int, reward_event: Literal["click", "conversion"]
              ) -> ServiceRows:
    """Rows of the service's store (``sqlite:PATH`` or a ``.db`` file) or of a canonical event log (a dataset
    name, file or folder, e.g. ``rankstack simulate``'s output)."""
    if source.startswith("sqlite:") or "://" in source or is_state_store(Path(source)):
        return read_service_rows(sqlite_path(source), user_map=parts.user_map, item_map=parts.item_map,
                                 train_histories=parts.histories, max_len=max_len, reward_event=reward_event)
    return rows_from_events(dataset_events(source), user_map=parts.user_map, item_map=parts.item_map,
                            train_histories=parts.histories, max_len=max_len, reward_event=reward_event)


def train_from_service(artifact: Path, source: str, out: Path, config: SeqReinforceConfig, *,
                       reward_event: Literal["click", "conversion"] = "click",
                       log: Log | None = None) -> dict[str, Any]:
    """Read the log, compute the SASRec states, train, save the policy to ``out``; returns its report."""
    t0 = time.perf_counter()
    parts = load_artifact(artifact)
    sasrec = find_sasrec(parts)
    rows = read_rows(parts, source, sasrec.config.max_len, reward_event)
    if not len(rows.items):
        raise ConfigError(f"{source}: no impressions of items the artifact knows ({rows.counts})")
    if log is not None:
        log(f"{len(rows.items):,} rows, {int(rows.rewards.sum()):,} rewarded; computing SASRec states")
    states = distinct_states(sasrec, rows.histories)
    logged = rows_from_arrays(states, rows.items, rows.rewards, rows.propensity)
    policy = train_seq_reinforce(logged, sasrec.item_vectors().cpu(), config, log=log)
    policy.report_ |= {"artifact": str(artifact), "log": source, "reward_event": reward_event,
                       "reader": rows.counts, "share_empty_history": float(np.mean([len(h) == 0
                                                                                   for h in rows.histories])),
                       "total_wall_s": round(time.perf_counter() - t0, 2)}
    SeqReinforcePolicy.save(policy, out)
    return policy.report_
