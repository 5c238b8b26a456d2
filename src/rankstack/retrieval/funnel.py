"""Funnel diagnostics: how many of a user's held-out items survive candidate generation, per source and merged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.candidates import Candidates
from rankstack.data.dataset import Dataset
from rankstack.evaluation.metrics import hits_matrix
from rankstack.plotting import save_figure
from rankstack.progress import new_progress
from rankstack.retrieval.merge import merge_rows, merge_sources_config
from rankstack.retrieval.source import CandidateSource

MERGED = "merged"


def candidate_recall(item_ids: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per row: |candidates ∩ held-out items| / |held-out items| (NaN for rows with no held-out item)."""
    hits = hits_matrix(item_ids, truth).sum(axis=1)
    n_rel = np.diff(sp.csr_matrix(truth).indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, hits / n_rel, np.nan)


@dataclass
class FunnelReport:
    """Mean candidate recall@K per stage (each source, then ``merged``), over users with held-out items."""

    ks: list[int]
    recall: dict[str, dict[int, float]] = field(default_factory=dict)
    n_users: int = 0

    def table(self) -> str:
        """Markdown table: one row per stage, one column per K."""
        head = "| stage | " + " | ".join(f"recall@{k}" for k in self.ks) + " |"
        rule = "|---|" + "---|" * len(self.ks)
        rows = [f"| {name} | " + " | ".join(f"{vals[k]:.4f}" for k in self.ks) + " |"
                for name, vals in self.recall.items()]
        return "\n".join([head, rule, *rows])

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"ks": self.ks, "n_users": self.n_users,
                "recall": {n: {str(k): v for k, v in vals.items()} for n, vals in self.recall.items()}}

    def plot(self, path: str | Path, title: str = "candidate recall") -> Path:
        """Line plot of recall@K vs K per stage (matplotlib Agg), saved to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, vals in self.recall.items():
            merged = name == MERGED
            ax.plot(self.ks, [vals[k] for k in self.ks], marker="o", label=name, linewidth=2.5 if merged else 1.5,
                    color="black" if merged else None)
        ax.set_xscale("log")
        ax.set_xticks(self.ks, [str(k) for k in self.ks])
        ax.set_xlabel("candidates per user (K)")
        ax.set_ylabel("share of held-out items in the candidates")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        return save_figure(fig, path)


def funnel_recall(
    sources: Mapping[str, CandidateSource],
    held_out: Dataset,
    ks: Sequence[int] = (100, 200, 500, 1000),
    *,
    weights: Mapping[str, float] | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> FunnelReport:
    """Candidate recall@K of each fitted source and of their merge at the same budget K.

    Every source retrieves its top-max(K) once (training items excluded); a source's list at K is its
    prefix. merged@K = merge of the sources' top-K lists with equal quotas ⌊K/S⌋ and reciprocal-rank
    fill to K slots, so merged and single sources are compared at the same candidate budget.
    Sources score and take their top-k on their own devices; the merges run on ``device`` (e.g. "cuda";
    :func:`~rankstack.retrieval.merge.merge_rows`, the same lists as the NumPy merge), which with a large
    ``batch_size`` is what takes a 30k-user, 41k-item catalog through four budgets in seconds, not minutes.
    """
    ks = sorted(int(k) for k in ks)
    names = list(sources)
    truth = held_out.interaction_matrix()
    users = np.flatnonzero(np.diff(truth.indptr) > 0).astype(np.int64)
    sums: dict[str, dict[int, float]] = {n: dict.fromkeys(ks, 0.0) for n in [*names, MERGED]}
    max_k = ks[-1]
    with new_progress() as progress:
        task = progress.add_task("funnel recall", total=len(users))
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            rows = truth[batch]
            cands = {n: src.retrieve(batch, max_k) for n, src in sources.items()}
            for n, c in cands.items():
                hits = hits_matrix(c.item_ids, rows)
                n_rel = np.diff(rows.indptr)
                cum = np.cumsum(hits, axis=1)
                for k in ks:
                    sums[n][k] += float((cum[:, min(k, c.k) - 1] / n_rel).sum())
            for k in ks:
                prefix = [Candidates(c.item_ids[:, :k], c.scores[:, :k], c.source) for c in cands.values()]
                merged = merge_rows(prefix, merge_sources_config(names, k, weights), device)
                sums[MERGED][k] += float(np.nansum(candidate_recall(merged.item_ids, rows)))
            progress.advance(task, len(batch))
    denom = max(len(users), 1)
    recall = {name: {k: v / denom for k, v in vals.items()} for name, vals in sums.items()}
    return FunnelReport(ks=ks, recall=recall, n_users=len(users))
