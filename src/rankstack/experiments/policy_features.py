"""Fit the learning exploration stage's features at train time: a truncated SVD of the training interactions, or
a fitted vector source's projected vectors (``rankstack.experiments.policy_representation``)."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import svds

from rankstack.bandits.pool_stats import PoolStats, quantize
from rankstack.data.dataset import Dataset
from rankstack.experiments.policy_representation import representation_features
from rankstack.pipeline.config import LearningSettings
from rankstack.pipeline.online_policy import PolicyFeatures
from rankstack.retrieval.source import CandidateSource


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def fit_policy_features(settings: LearningSettings, data: Dataset,
                        representation: CandidateSource | None = None) -> PolicyFeatures:
    """The features of ``settings.representation``: :func:`svd_features` (``svd``), or the fitted vector source
    ``representation`` projected to ``dim`` dimensions; then the training log's statistics when ``warm_start``."""
    if settings.representation == "svd":
        features = svd_features(settings, data)
    elif representation is None:
        raise ValueError(f"learning.representation {settings.representation!r} needs that fitted source")
    else:
        features = representation_features(representation, data.n_users, settings.dim)
    if not settings.warm_start:
        return features
    return PolicyFeatures(features.users, features.items, initial_stats(settings, data, features))


def svd_features(settings: LearningSettings, data: Dataset) -> PolicyFeatures:
    """User and item vectors U√S and V√S of the binary user × item matrix ≈ U S Vᵀ (rank ``settings.dim``), each
    row scaled to unit norm and stored fixed-point; deterministic (fixed ARPACK start vector, signs fixed so that
    each item component's largest entry is positive). Tiny data with fewer dimensions pads with zeros."""
    matrix = data.interaction_matrix().astype(np.float64)
    n_users, n_items = matrix.shape
    rank = min(settings.dim, min(n_users, n_items) - 1)
    users = np.zeros((n_users, settings.dim))
    items = np.zeros((n_items, settings.dim))
    if rank >= 1 and matrix.nnz:
        start = np.full(min(n_users, n_items), 1.0 / np.sqrt(min(n_users, n_items)))
        u, s, vt = svds(matrix, k=rank, v0=start, solver="arpack")
        order = np.argsort(-s)
        u, s, v = u[:, order], s[order], vt[order].T
        signs = np.sign(v[np.abs(v).argmax(axis=0), np.arange(rank)])
        signs[signs == 0] = 1.0
        root = np.sqrt(np.maximum(s, 0.0)) * signs
        users[:, :rank], items[:, :rank] = u * root, v * root
    return PolicyFeatures(quantize(unit_rows(users)).astype(np.int16), quantize(unit_rows(items)).astype(np.int16))


def initial_stats(settings: LearningSettings, data: Dataset, features: PolicyFeatures) -> PoolStats | None:
    """The training log's feedback folded as the service folds its own (impressions = pulls, clicks and conversions
    = rewards), when the log has impressions; None otherwise (a log of positives only would add rewards without
    pulls)."""
    events = data.events
    kinds = events.get_column("event").to_numpy()
    pulls = (kinds == "impression").astype(np.int64)
    if not pulls.any():
        return None
    rewards = np.where(kinds == "click", settings.click_reward,
                       np.where(kinds == "conversion", settings.conversion_reward, 0)).astype(np.int64)
    keep = (pulls > 0) | (rewards > 0)
    users = events.get_column("user_id").to_numpy().astype(np.int64)[keep]
    items = events.get_column("item_id").to_numpy().astype(np.int64)[keep]
    stats = PoolStats.empty(features.dim, features.items.shape[0])
    for start in range(0, len(items), 100_000):  # bounded memory: φ of 100k events at a time
        part = slice(start, start + 100_000)
        stats.fold(features.phi_rows(users[part], items[part]), items[part], pulls[keep][part], rewards[keep][part])
    return stats
