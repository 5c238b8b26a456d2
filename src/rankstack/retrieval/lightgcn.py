"""LightGCN (He et al., SIGIR 2020): linear propagation over the normalised user–item graph, BPR loss
(the paper's set-up) or, optionally, a sampled softmax with logQ correction."""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field
from torch.nn import functional as F

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.evaluator import Evaluator
from rankstack.progress import new_progress
from rankstack.retrieval.base import BudgetStop, CandidateSource, SourceConfig


class LightGCNConfig(SourceConfig):
    """Paper defaults: dim 64, 3 layers, lr 1e-3, L2 1e-4; ``validation_ratio`` 0 disables early stopping.

    Without ``refit``, the layer-0 embeddings of the best validation epoch are propagated over the whole
    training graph (validation edges included) for the final embeddings; ``time_budget_s`` stops training.
    ``loss`` "softmax" trains a sampled softmax at ``temperature`` τ over the batch's positives plus
    ``negatives`` uniform items, on cosines when ``cosine`` (then the final embeddings are L2-normalised).
    """

    embedding_dim: int = Field(default=64, ge=1)
    layers: int = Field(default=3, ge=0)
    lr: float = Field(default=1e-3, gt=0)
    epochs: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=2048, ge=1)
    l2: float = Field(default=1e-4, ge=0)
    validation_ratio: float = Field(default=0.1, ge=0, lt=1)
    eval_every: int = Field(default=5, ge=1)
    patience: int = Field(default=10, ge=1)
    eval_k: int = Field(default=20, ge=1)
    refit: bool = False
    time_budget_s: float | None = Field(default=None, gt=0)
    loss: Literal["bpr", "softmax"] = "bpr"
    temperature: float = Field(default=0.1, gt=0)
    negatives: int = Field(default=1024, ge=0)
    cosine: bool = True
    seed: int = 0
    device: str = "auto"


def normalized_adjacency(x: sp.csr_matrix) -> sp.csr_matrix:
    """Â = D^{-1/2} A D^{-1/2} with A = [[0, X], [Xᵀ, 0]] over users then items (isolated nodes stay 0)."""
    n_users, n_items = x.shape
    a = sp.bmat([[None, x], [x.T, None]], format="csr", dtype=np.float32)
    a.data[:] = 1.0
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg, dtype=np.float32)
    nz = deg > 0
    inv_sqrt[nz] = 1.0 / np.sqrt(deg[nz])
    d = sp.diags(inv_sqrt)
    out = (d @ a @ d).tocsr()
    out.sort_indices()
    assert out.shape == (n_users + n_items, n_users + n_items)
    return out


def to_torch_csr(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor on ``device``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)), size=m.shape, device=device, check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """y = Â x for symmetric Â, so the backward pass is ∂L/∂x = Âᵀ g = Â g (no transpose needed)."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adj @ grad


def propagate(adj: torch.Tensor, ego: torch.Tensor, layers: int) -> torch.Tensor:
    """Layer mean E = 1/(L+1) Σ_{l=0..L} Â^l E⁰."""
    total, h = ego, ego
    for _ in range(layers):
        h = _SymmetricSpMM.apply(adj, h)
        total = total + h
    return total / (layers + 1)


def ragged_ranges(starts: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(owner, index) of the concatenated ranges starts[r] .. starts[r] + lens[r] − 1, without Python loops."""
    owner = torch.repeat_interleave(torch.arange(len(starts), device=starts.device), lens)
    offset = (torch.cumsum(lens, 0) - lens)[owner]
    return owner, torch.arange(len(owner), device=starts.device) - offset + starts[owner]


def accidental_hits(users: torch.Tensor, cols: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """hit[b, c] = (users[b], cols[c]) is a training pair, from the CSR ``positives`` [n_users, n_items].

    Costs O(Σ_b deg(users[b]) · log |cols| + hits), not O(|users| · |cols|) look-ups.
    """
    indptr, indices = positives.crow_indices(), positives.col_indices()
    row, at = ragged_ranges(indptr[users], indptr[users + 1] - indptr[users])
    sorted_cols, order = torch.sort(cols)
    lo = torch.searchsorted(sorted_cols, indices[at])
    hi = torch.searchsorted(sorted_cols, indices[at], right=True)
    pair, k = ragged_ranges(lo, hi - lo)
    hit = torch.zeros(len(users), len(cols), dtype=torch.bool, device=users.device)
    hit[row[pair], order[k]] = True
    return hit


def sample_negatives(
    users: torch.Tensor, pos_keys: torch.Tensor, n_items: int, gen: torch.Generator, rounds: int = 3
) -> torch.Tensor:
    """Uniform item per user, re-drawn (vectorised, ``rounds`` times) where it is a training positive.

    ``pos_keys`` are the sorted keys user·n_items + item of all training pairs, on the same device.
    """
    neg = torch.randint(0, n_items, users.shape, device=users.device, generator=gen)
    for _ in range(rounds):
        keys = users * n_items + neg
        pos = torch.searchsorted(pos_keys, keys).clamp_max(pos_keys.numel() - 1)
        clash = pos_keys[pos] == keys
        if not bool(clash.any()):
            break
        redraw = torch.randint(0, n_items, users.shape, device=users.device, generator=gen)
        neg = torch.where(clash, redraw, neg)
    return neg


def holdout(x: sp.csr_matrix, ratio: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per-interaction random holdout of ``ratio`` for validation; users with < 3 interactions keep all."""
    coo = x.tocoo()
    counts = np.diff(x.indptr)[coo.row]
    val = (np.random.default_rng(seed).random(coo.nnz) < ratio) & (counts >= 3)
    part = [sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=x.shape) for m in (~val, val)]
    return part[0], part[1]


class LightGCN(CandidateSource):
    """score(u, i) = ⟨e_u, e_i⟩ with [E_U; E_I] = 1/(L+1) Σ_l Â^l E⁰ (see :func:`propagate`); with the
    cosine softmax, e_u and e_i are L2-normalised so the score is the cosine the model was trained on.

    BPR loss per batch B of (u, i⁺, i⁻): −mean log σ(ŷ_ui⁺ − ŷ_ui⁻) + λ · ½(‖e⁰_u‖² + ‖e⁰_i⁺‖² + ‖e⁰_i⁻‖²)/|B|;
    softmax loss: see :meth:`_softmax_loss`.
    """

    name = "lightgcn"
    config_class = LightGCNConfig
    config: LightGCNConfig

    def fit(self, dataset: Dataset) -> LightGCN:
        """Train with Adam; early-stop on validation recall@eval_k (optionally refit on all of train)."""
        cfg = self.config
        x = dataset.interaction_matrix(binary=True)
        self.train_ = x
        self.device_ = resolve_device(cfg.device)
        self.history_: list[dict[str, float]] = []
        self.budget_stop_ = None
        if cfg.validation_ratio > 0:
            graph, val = holdout(x, cfg.validation_ratio, cfg.seed)
            best_epoch = self._train(graph, val, cfg.epochs, final_graph=x)
            if cfg.refit:
                self._train(x, None, best_epoch)
        else:
            self._train(x, None, cfg.epochs)
        return self

    def _train(self, graph: sp.csr_matrix, val: sp.csr_matrix | None, epochs: int,
               final_graph: sp.csr_matrix | None = None) -> int:
        """Train from scratch on ``graph``; returns the best (or last) epoch and keeps its embeddings,
        propagated over ``final_graph`` (default ``graph``)."""
        cfg, dev = self.config, self.device_
        n_users, n_items = graph.shape
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device=dev)
        gen.manual_seed(cfg.seed)
        adj = to_torch_csr(normalized_adjacency(graph), dev)
        ego = torch.nn.Parameter(torch.empty(n_users + n_items, cfg.embedding_dim, device=dev))
        torch.nn.init.normal_(ego, std=0.1)
        opt = torch.optim.Adam([ego], lr=cfg.lr)
        coo = graph.tocoo()
        pairs_u = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
        pairs_i = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
        pos_keys = torch.sort(pairs_u * n_items + pairs_i).values
        item_freq = torch.bincount(pairs_i, minlength=n_items).float() / max(pairs_i.numel(), 1)
        positives = to_torch_csr(graph, dev)
        evaluator = Evaluator(graph, val, ks=[cfg.eval_k], device=dev) if val is not None else None
        best, best_epoch, stale, t0 = -1.0, epochs, 0, time.perf_counter()
        best_ego = ego.detach().clone()
        n = pairs_u.numel()
        with new_progress() as progress:
            task = progress.add_task("LightGCN", total=epochs)
            for epoch in range(1, epochs + 1):
                perm = torch.randperm(n, device=dev, generator=gen)
                total = torch.zeros((), device=dev)
                for start in range(0, n, cfg.batch_size):
                    idx = perm[start : start + cfg.batch_size]
                    u, i = pairs_u[idx], pairs_i[idx]
                    if cfg.loss == "bpr":
                        j = sample_negatives(u, pos_keys, n_items, gen)
                        loss = self._bpr_loss(adj, ego, u, i, j, n_users)
                    else:
                        j = torch.randint(0, n_items, (cfg.negatives,), device=dev, generator=gen)
                        loss = self._softmax_loss(adj, ego, u, i, j, positives, item_freq, n_users)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(idx)
                row: dict[str, float] = {"epoch": epoch, "wall_s": time.perf_counter() - t0, "loss": float(total) / n}
                out_of_time = cfg.time_budget_s is not None and row["wall_s"] >= cfg.time_budget_s
                if evaluator is not None and (epoch % cfg.eval_every == 0 or epoch == epochs or out_of_time):
                    metrics = evaluator.evaluate_embeddings(*self._outputs(self._final(adj, ego, n_users), n_users))
                    row.update({f"val_{k}": v for k, v in metrics.items() if k.startswith(("recall", "ndcg"))})
                    score = metrics[f"recall@{cfg.eval_k}"]
                    if score > best:
                        best, best_epoch, stale = score, epoch, 0
                        best_ego = ego.detach().clone()
                    else:
                        stale += 1
                    progress.update(task, description=f"LightGCN val recall@{cfg.eval_k} {score:.4f}")
                self.history_.append(row)
                progress.update(task, advance=1)
                if out_of_time and epoch < epochs and cfg.time_budget_s is not None:
                    self.budget_stop_ = BudgetStop(cfg.time_budget_s, epoch, epochs, round(row["wall_s"], 3))
                if (evaluator is not None and stale >= cfg.patience) or out_of_time:
                    break
        if evaluator is None:
            best_ego, best_epoch = ego.detach(), epoch
        if final_graph is not None and final_graph is not graph:
            adj = to_torch_csr(normalized_adjacency(final_graph), dev)
        self._keep(self._final(adj, best_ego, n_users), n_users)
        self.best_epoch_ = best_epoch
        return best_epoch

    def _final(self, adj: torch.Tensor, ego: torch.Tensor, n_users: int) -> torch.Tensor:
        with torch.no_grad():
            return propagate(adj, ego.detach(), self.config.layers)

    def _outputs(self, emb: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(user, item) embeddings as scored: L2-normalised when trained with the cosine softmax."""
        users, items = emb[:n_users], emb[n_users:]
        if self.config.loss == "softmax" and self.config.cosine:
            return F.normalize(users, dim=1), F.normalize(items, dim=1)
        return users, items

    def _keep(self, emb: torch.Tensor, n_users: int) -> None:
        users, items = self._outputs(emb, n_users)
        self.user_emb_ = users.clone()
        self.item_emb_ = items.clone()

    def _bpr_loss(self, adj: torch.Tensor, ego: torch.Tensor, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                  n_users: int) -> torch.Tensor:
        """BPR on propagated embeddings plus L2 on the batch's ego (layer-0) embeddings."""
        emb = propagate(adj, ego, self.config.layers)
        eu, ei, ej = emb[u], emb[n_users + i], emb[n_users + j]
        margin = (eu * ei).sum(1) - (eu * ej).sum(1)
        reg = ego[u].pow(2).sum() + ego[n_users + i].pow(2).sum() + ego[n_users + j].pow(2).sum()
        return -torch.nn.functional.logsigmoid(margin).mean() + self.config.l2 * 0.5 * reg / len(u)

    def _softmax_loss(self, adj: torch.Tensor, ego: torch.Tensor, u: torch.Tensor, i: torch.Tensor,
                      j: torch.Tensor, positives: torch.Tensor, item_freq: torch.Tensor,
                      n_users: int) -> torch.Tensor:
        """−mean_b log softmax_c(s(u_b, c)/τ − log Q_c)[i_b] + λ · ½ Σ‖e⁰‖²/|B| over the batch's u, i and j.

        Columns c are the batch's positives i then the shared uniform negatives j; Q_c = |B|·q_c + K/n_items
        is c's expected count among them (q_c its share of training edges, K = len(j)), applied alike to
        every column, the target included. Columns that are a training positive of the row's user
        (``positives``, CSR), other than the row's own target, are masked (accidental hits). s is the cosine
        when ``cosine``, else ⟨·,·⟩.
        """
        cfg = self.config
        n_items = item_freq.numel()
        emb = propagate(adj, ego, cfg.layers)
        cols = torch.cat([i, j])
        eu, ec = emb[u], emb[n_users + cols]
        if cfg.cosine:
            eu, ec = F.normalize(eu, dim=1), F.normalize(ec, dim=1)
        log_q = torch.log(len(u) * item_freq[cols] + len(j) / n_items)
        logits = eu @ ec.T / cfg.temperature - log_q
        target = torch.arange(len(u), device=u.device)
        with torch.no_grad():
            hit = accidental_hits(u, cols, positives)
            hit[target, target] = False
        logits = logits.masked_fill(hit, float("-inf"))
        reg = ego[u].pow(2).sum() + ego[n_users + cols].pow(2).sum()
        return F.cross_entropy(logits, target) + cfg.l2 * 0.5 * reg / len(u)

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """⟨e_u, e_i⟩ for every item (cosine when trained with the cosine softmax)."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_emb_.device)
        return self.user_emb_[users] @ self.item_emb_.T

    def item_vectors(self) -> torch.Tensor:
        """Final item embeddings (index these with a VectorIndex: inner product, = cosine if normalised)."""
        return self.item_emb_

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """Final user embeddings (queries)."""
        return self.user_emb_[torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_emb_.device)]

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Final embeddings and the training history."""
        return {"user_emb": self.user_emb_, "item_emb": self.item_emb_}, {
            "history": self.history_, "best_epoch": self.best_epoch_,
            "budget_stop": None if self.budget_stop_ is None else self.budget_stop_.to_json()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore the embeddings on the configured device."""
        self.device_ = resolve_device(self.config.device)
        self.user_emb_ = tensors["user_emb"].to(self.device_)
        self.item_emb_ = tensors["item_emb"].to(self.device_)
        self.history_ = list(meta.get("history", []))
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        self.budget_stop_ = BudgetStop.from_json(meta.get("budget_stop"))
