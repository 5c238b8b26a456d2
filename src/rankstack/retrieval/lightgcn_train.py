"""Training LightGCN: the normalised graph, propagation with its sparse backward pass, negative sampling, the
BPR and sampled-softmax losses, and the epoch loop with early stopping on validation recall. :meth:`LightGCN.fit`
calls :func:`train_lightgcn`; loading a trained model never imports this module."""

from __future__ import annotations

import warnings
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.early_stopping_train import Deadline, EarlyStopping, Validation
from rankstack.evaluation.fit_summary import FitSummary, StoppedBy
from rankstack.progress import new_progress
from rankstack.retrieval.source import BudgetStop

if TYPE_CHECKING:  # the model imports this module inside fit(): no import back at run time
    from rankstack.retrieval.lightgcn import LightGCN, LightGCNConfig


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



def train_lightgcn(model: LightGCN, dataset: Dataset) -> None:
    """Train ``model`` with Adam; early-stop on validation recall@eval_k (optionally refit on all of train). One
    :class:`Deadline` of ``time_budget_s`` covers the whole fit: set-up, epochs, validation and the refit."""
    cfg = model.config
    deadline = Deadline(cfg.time_budget_s)
    x = dataset.interaction_matrix(binary=True)
    model.train_ = x
    model.device_ = resolve_device(cfg.device)
    model.history_ = []
    model.budget_stop_ = None
    if cfg.validation_ratio > 0:
        graph, val = holdout(x, cfg.validation_ratio, cfg.seed)
        summary = _train(model, graph, val, cfg.epochs, deadline, final_graph=x)
        if cfg.refit and summary.best_epoch:
            _train(model, x, None, summary.best_epoch, deadline, label="LightGCN refit")
            model.best_epoch_ = summary.best_epoch  # the refit ran that many epochs on all of train
    else:
        summary = _train(model, x, None, cfg.epochs, deadline)
    model.fit_summary_ = summary


class LightGCNLoss:
    """The training losses over one graph: ``adj`` (normalised, users then items), the training pairs
    ``positives`` (CSR [n_users, n_items]) and each item's share of them ``item_freq``.

    BPR per batch B of (u, i⁺, i⁻): −mean log σ(ŷ_ui⁺ − ŷ_ui⁻) + λ · ½(‖e⁰_u‖² + ‖e⁰_i⁺‖² + ‖e⁰_i⁻‖²)/|B|;
    softmax: see :meth:`softmax`.
    """

    def __init__(self, config: LightGCNConfig, adj: torch.Tensor, positives: torch.Tensor, item_freq: torch.Tensor,
                 n_users: int) -> None:
        self.config, self.adj, self.positives, self.item_freq, self.n_users = config, adj, positives, item_freq, n_users

    def bpr(self, ego: torch.Tensor, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """BPR on propagated embeddings plus L2 on the batch's ego (layer-0) embeddings."""
        n_users = self.n_users
        emb = propagate(self.adj, ego, self.config.layers)
        eu, ei, ej = emb[u], emb[n_users + i], emb[n_users + j]
        margin = (eu * ei).sum(1) - (eu * ej).sum(1)
        reg = ego[u].pow(2).sum() + ego[n_users + i].pow(2).sum() + ego[n_users + j].pow(2).sum()
        return -torch.nn.functional.logsigmoid(margin).mean() + self.config.l2 * 0.5 * reg / len(u)

    def softmax(self, ego: torch.Tensor, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """−mean_b log softmax_c(s(u_b, c)/τ − log Q_c)[i_b] + λ · ½ Σ‖e⁰‖²/|B| over the batch's u, i and j.

        Columns c are the batch's positives i then the shared uniform negatives j; Q_c = |B|·q_c + K/n_items
        is c's expected count among them (q_c its share of training edges, K = len(j)), applied alike to
        every column, the target included. Columns that are a training positive of the row's user
        (``positives``, CSR), other than the row's own target, are masked (accidental hits). s is the cosine
        when ``cosine``, else ⟨·,·⟩.
        """
        cfg, n_users, item_freq = self.config, self.n_users, self.item_freq
        n_items = item_freq.numel()
        emb = propagate(self.adj, ego, cfg.layers)
        cols = torch.cat([i, j])
        eu, ec = emb[u], emb[n_users + cols]
        if cfg.cosine:
            eu, ec = F.normalize(eu, dim=1), F.normalize(ec, dim=1)
        log_q = torch.log(len(u) * item_freq[cols] + len(j) / n_items)
        logits = eu @ ec.T / cfg.temperature - log_q
        target = torch.arange(len(u), device=u.device)
        with torch.no_grad():
            hit = accidental_hits(u, cols, self.positives)
            hit[target, target] = False
        logits = logits.masked_fill(hit, float("-inf"))
        reg = ego[u].pow(2).sum() + ego[n_users + cols].pow(2).sum()
        return F.cross_entropy(logits, target) + cfg.l2 * 0.5 * reg / len(u)


def _train(model: LightGCN, graph: sp.csr_matrix, val: sp.csr_matrix | None, epochs: int, deadline: Deadline,
           final_graph: sp.csr_matrix | None = None, label: str = "LightGCN") -> FitSummary:
    """Train from scratch on ``graph`` until ``epochs``, patience or ``deadline``; keeps the best (or last) epoch's
    embeddings, propagated over ``final_graph`` (default ``graph``), and returns what the run did.

    The deadline is asked before every batch; an epoch it cuts is dropped (the last completed one, if
    ``eval_every`` skipped it, is validated in the time kept back for that) unless no epoch was completed: then
    its partial updates are kept."""
    cfg, dev = model.config, model.device_
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
    losses = LightGCNLoss(cfg, adj, to_torch_csr(graph, dev), item_freq, n_users)
    validation = Validation(graph, val, cfg.eval_k, dev) if val is not None else None
    stop: EarlyStopping[torch.Tensor] = EarlyStopping(
        epochs, cfg.patience, cfg.eval_every, deadline=deadline,
        metric=None if validation is None else validation.key)
    initial = ego.detach().clone()  # kept if no validation ever scores (e.g. no held-out pair)
    last_done: torch.Tensor | None = None  # the last completed epoch's ego, kept under a budget
    n = pairs_u.numel()
    done, cut = 0, False
    stopped_by: StoppedBy = "epochs"
    with new_progress() as progress:
        task = progress.add_task(label, total=epochs)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(n, device=dev, generator=gen)
            total = torch.zeros((), device=dev)
            cut = False
            for start in range(0, n, cfg.batch_size):
                if start and stop.time_to_stop():  # every epoch it starts runs one batch at least
                    cut = True
                    break
                idx = perm[start : start + cfg.batch_size]
                u, i = pairs_u[idx], pairs_i[idx]
                if cfg.loss == "bpr":
                    loss = losses.bpr(ego, u, i, sample_negatives(u, pos_keys, n_items, gen))
                else:
                    loss = losses.softmax(ego, u, i, torch.randint(0, n_items, (cfg.negatives,), device=dev,
                                                                   generator=gen))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
                progress.update(task, advance=len(idx) / n)
            if cut:
                stopped_by = "budget"
                if validation is not None and last_done is not None and done > (stop.curve or [(0, 0.0)])[-1][0]:
                    # the time kept back for one validation pass scores the last completed epoch, which
                    # eval_every skipped, instead of losing it
                    metrics = stop.validate(partial(_validate, validation, cfg, adj, last_done, n_users))
                    stop.record(done, metrics[validation.key], partial(torch.Tensor.detach, last_done))
                    model.history_[-1].update(metrics)
                break
            done = epoch
            if deadline.budget_s is not None:
                last_done = ego.detach().clone()
            row: dict[str, float] = {"epoch": epoch, "wall_s": stop.elapsed(), "loss": float(total) / n}
            out_of_time = stop.time_to_stop(row["wall_s"])
            if validation is not None and stop.due(epoch, out_of_time):
                metrics = stop.validate(lambda: validation.of_embeddings(*_outputs(cfg, _final(cfg, adj, ego),
                                                                                   n_users)))
                row.update(metrics)
                score = metrics[validation.key]
                stop.record(epoch, score, lambda: ego.detach().clone())
                progress.update(task, description=f"{label} val recall@{cfg.eval_k} {score:.4f}")
            model.history_.append(row)
            if validation is not None and stop.patience_spent:
                stopped_by = "converged"
                break
            if out_of_time and epoch < epochs:
                stopped_by = "budget"
                break
    best_ego, best_epoch = _kept(stop, ego, last_done, initial, done, cut, validation is not None)
    if stopped_by == "budget":
        cut_epoch: Literal["discarded", "kept"] | None = None
        if cut:
            cut_epoch = "kept" if best_epoch is None else "discarded"
        model.budget_stop_ = BudgetStop(cfg.time_budget_s or 0.0, done, epochs, round(stop.elapsed(), 3), cut_epoch)
    if final_graph is not None and final_graph is not graph:
        adj = to_torch_csr(normalized_adjacency(final_graph), dev)
    model.user_emb_, model.item_emb_ = (e.clone() for e in _outputs(cfg, _final(cfg, adj, best_ego), n_users))
    model.best_epoch_ = best_epoch or 0
    return stop.summary(done, stopped_by, best_epoch)


def _kept(stop: EarlyStopping[torch.Tensor], ego: torch.Tensor, last_done: torch.Tensor | None,
          initial: torch.Tensor, done: int, cut: bool, validated: bool) -> tuple[torch.Tensor, int | None]:
    """(ego embeddings to keep, their epoch): the best validated epoch; without one, the last completed epoch
    (its snapshot after a cut) or, when a cut left none, the partial updates (epoch None)."""
    if stop.best_state is not None:
        return stop.best_state, stop.best_epoch
    if cut:
        if last_done is not None:
            return last_done, done
        return ego.detach(), None
    if validated:  # no validation ever scored (no held-out pair): the initial embeddings, as before training
        return initial, None
    return ego.detach(), done


def _validate(validation: Validation, cfg: LightGCNConfig, adj: torch.Tensor, ego: torch.Tensor,
              n_users: int) -> dict[str, float]:
    """Validation metrics of the layer-0 embeddings ``ego``."""
    return validation.of_embeddings(*_outputs(cfg, _final(cfg, adj, ego), n_users))


def _final(cfg: LightGCNConfig, adj: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
    """The propagated embeddings of ``ego``, without gradients."""
    with torch.no_grad():
        return propagate(adj, ego.detach(), cfg.layers)


def _outputs(cfg: LightGCNConfig, emb: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(user, item) embeddings as scored: L2-normalised when trained with the cosine softmax."""
    users, items = emb[:n_users], emb[n_users:]
    if cfg.loss == "softmax" and cfg.cosine:
        return F.normalize(users, dim=1), F.normalize(items, dim=1)
    return users, items
