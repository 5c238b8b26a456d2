"""The learning exploration stage's features from a fitted network (``learning.representation: <source>``): the
source's user and item vectors, projected jointly to ``dim`` dimensions and unit-normalised like the SVD ones.

With ``policy: neural_linear`` (``lints`` over these features) this is NeuralLinear (Riquelme, Tucker & Snoek,
ICLR 2018): Thompson sampling on a Bayesian linear model over a learned network's last-layer representation. The
network is frozen at train time; for SASRec the user vector is the state after the user's training history.
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.pool_stats import quantize
from rankstack.pipeline.online_policy import PolicyFeatures
from rankstack.ranking.candidate_features import unit_rows
from rankstack.retrieval.indexed import VectorSource, has_vectors
from rankstack.retrieval.source import CandidateSource


def item_projection(items: np.ndarray, dim: int) -> np.ndarray:
    """P [D, r] (r = min(dim, D, n_items)): the top right singular vectors of the (uncentred) item matrix
    Y ≈ U S Pᵀ, signs fixed so that each column of Y P has its largest-magnitude entry positive.

    Uncentred, so that ⟨x P, y P⟩ keeps the part of the model's score ⟨x, y⟩ that lies in the items' dominant
    subspace (a centred PCA would drop the mean item direction, which often carries popularity)."""
    y = np.asarray(items, np.float64)
    rank = min(dim, y.shape[1], y.shape[0])
    if rank < 1:
        return np.zeros((y.shape[1], 0))
    _, _, vt = np.linalg.svd(y, full_matrices=False)
    proj = vt[:rank].T
    coords = y @ proj
    signs = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(rank)])
    signs[signs == 0] = 1.0
    return proj * signs


def project_vectors(users: np.ndarray, items: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(x [n_users, dim], y [n_items, dim]) int16 fixed-point: unit rows of users·P and items·P with
    P = :func:`item_projection` (zero-padded to ``dim`` columns when the vectors have fewer)."""
    if users.shape[1] != items.shape[1]:
        raise ValueError(f"user vectors have {users.shape[1]} dimensions, item vectors {items.shape[1]}")
    proj = item_projection(items, dim)
    x = np.zeros((users.shape[0], dim))
    y = np.zeros((items.shape[0], dim))
    x[:, :proj.shape[1]] = np.asarray(users, np.float64) @ proj
    y[:, :proj.shape[1]] = np.asarray(items, np.float64) @ proj
    return quantize(unit_rows(x)).astype(np.int16), quantize(unit_rows(y)).astype(np.int16)


def source_vectors(source: CandidateSource, n_users: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(user vectors [n_users, D], item vectors [n_items, D]) float64 of a fitted vector source; users are the
    internal ids 0 … n_users − 1 of the data it was fitted on (SASRec: the state after each training history)."""
    if not (has_vectors(source) and isinstance(source, VectorSource)):
        raise ValueError(f"source {source.name!r} has no user/item vectors to use as a representation")
    items = source.item_vectors().detach().float().cpu().numpy().astype(np.float64)
    parts = [source.user_vectors(np.arange(start, min(start + batch, n_users), dtype=np.int64))
             .detach().float().cpu().numpy() for start in range(0, n_users, batch)]
    users = np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, items.shape[1]))
    return users, items


def representation_features(source: CandidateSource, n_users: int, dim: int) -> PolicyFeatures:
    """The policy features of :func:`project_vectors` over ``source``'s vectors (no initial statistics)."""
    users, items = source_vectors(source, n_users)
    x, y = project_vectors(users, items, dim)
    return PolicyFeatures(x, y)
