"""Training the two towers: event streams and their histories (causal for time-ordered logs, random subsets of
the user's other items for logs without time order), the in-batch (and mixed uniform) sampled softmax with logQ
correction, and the epoch loop with early stopping on validation recall. :meth:`TwoTower.fit` calls
:func:`train_two_tower`; loading a trained model never imports this module."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from rankstack import data_parallel
from rankstack.data.dataset import Dataset
from rankstack.data_parallel import Step, restore_torch_state, torch_state
from rankstack.device import resolve_device
from rankstack.evaluation.early_stopping_train import Deadline, EarlyStopping, Validation
from rankstack.evaluation.fit_summary import StoppedBy
from rankstack.progress import new_progress
from rankstack.retrieval.feature_tensors import FeatureEncoder
from rankstack.retrieval.lightgcn_train import holdout
from rankstack.retrieval.source import BudgetStop
from rankstack.retrieval.two_tower_net import StreamingFrequency, TwoTowerNet

if TYPE_CHECKING:  # the model imports this module inside fit(): no import back at run time
    from rankstack.retrieval.two_tower import TwoTower


def flatten_sequences(seqs: list[np.ndarray], drop: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(items, users, start of each event's user run) of the time-ordered events, minus pairs in ``drop``."""
    users = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs]).astype(np.int64)
    items = np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, np.int64)
    if drop is not None and drop.nnz:
        coo = drop.tocoo()
        n = drop.shape[1]
        keep = ~np.isin(users * n + items, coo.row.astype(np.int64) * n + coo.col)
        users, items = users[keep], items[keep]
    starts = np.searchsorted(users, users, side="left")
    return items, users, starts


def causal_history(flat_items: torch.Tensor, pos: torch.Tensor, starts: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` items before each position within its user's run: [len(pos), n], −1 pads (oldest first)."""
    idx = pos.unsqueeze(1) - torch.arange(n, 0, -1, device=pos.device).unsqueeze(0)
    valid = idx >= starts.unsqueeze(1)
    return torch.where(valid, flat_items[idx.clamp_min(0)], torch.full_like(idx, -1))


def set_history(flat_items: torch.Tensor, pos: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor,
                n: int) -> torch.Tensor:
    """Up to ``n`` other items of each position's user run, never the position itself: [len(pos), n], −1 pads.
    Walks backwards from the position, wrapping round the run; on a run shuffled each epoch it is a fresh random
    subset (without replacement) of the user's other items."""
    k = torch.arange(1, n + 1, device=pos.device).unsqueeze(0)
    offset = (pos - starts).unsqueeze(1)
    length = lengths.unsqueeze(1)
    idx = starts.unsqueeze(1) + torch.remainder(offset - k, length.clamp_min(1))
    return torch.where(k < length, flat_items[idx], torch.full_like(idx, -1))


def shuffle_within_users(users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A permutation of the (user-sorted) events that keeps each user's run in place and shuffles inside it."""
    noise = torch.rand(users.shape, device=users.device, generator=gen, dtype=torch.float64)
    return torch.argsort(users.to(torch.float64) + noise)


def resolve_history_order(dataset: Dataset, order: str) -> Literal["time", "set"]:
    """``auto`` → ``time`` when the events carry timestamps, else ``set``."""
    if order == "auto":
        ts = dataset.events.get_column("timestamp")
        return "time" if ts.null_count() < len(ts) else "set"
    return "time" if order == "time" else "set"


def train_two_tower(model: TwoTower, dataset: Dataset) -> None:
    """Encode features, train the towers, then embed every user and item (cold items from features). One
    :class:`Deadline` of ``time_budget_s`` covers the whole fit."""
    cfg = model.config
    deadline = Deadline(cfg.time_budget_s)
    x = dataset.interaction_matrix(binary=True)
    model.train_ = x
    model.device_ = dev = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model.item_encoder_ = FeatureEncoder("item_id", cfg.item_features).fit(dataset.item_features)
    model.user_encoder_ = FeatureEncoder("user_id", cfg.user_features).fit(dataset.user_features)
    model.item_feats_ = {k: v.to(dev) for k, v in model.item_encoder_.encode(dataset.item_features,
                                                                             x.shape[1]).items()}
    model.user_feats_ = {k: v.to(dev) for k, v in model.user_encoder_.encode(dataset.user_features,
                                                                             x.shape[0]).items()}
    model.net_ = TwoTowerNet(x.shape[0], x.shape[1], cfg.embedding_dim, cfg.hidden_dim, model.item_encoder_,
                             model.user_encoder_, cfg.use_user_id).to(dev)
    model.history_order_ = resolve_history_order(dataset, cfg.history_order)
    seqs = dataset.sequences()
    if model.history_order_ == "set":  # a set: each item once, order meaningless
        seqs = [np.unique(s) for s in seqs]
    val = None
    if cfg.validation_ratio > 0:
        graph, val = holdout(x, cfg.validation_ratio, cfg.seed)
    model.history_ = []
    model.budget_stop_ = None
    _train(model, seqs, x if val is None else graph, val, deadline)


def _histories(model: TwoTower, seqs: list[np.ndarray], drop: sp.csr_matrix | None) -> torch.Tensor:
    """Last ``history_len`` items of each user's sequence (of a seeded shuffle of it, for ``set`` histories):
    [n_users, N], −1 pads."""
    items, users, _ = flatten_sequences(seqs, drop)
    if model.history_order_ == "set":
        items = items[np.lexsort((np.random.default_rng(model.config.seed).random(len(items)), users))]
    ends = np.searchsorted(users, np.arange(len(seqs)), side="right")
    flat = torch.from_numpy(items)
    pos = torch.from_numpy(ends)
    begin = torch.from_numpy(np.searchsorted(users, np.arange(len(seqs)), side="left"))
    return causal_history(flat, pos, begin, model.config.history_len).to(model.device_)


def _autocast(model: TwoTower) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA when ``amp``; no-op otherwise."""
    if model.config.amp and model.device_.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train(model: TwoTower, seqs: list[np.ndarray], graph: sp.csr_matrix, val: sp.csr_matrix | None,
           deadline: Deadline) -> None:
    """Adam over the shuffled events each epoch until ``epochs``, patience or ``deadline``; keeps the weights of
    the best validation recall@eval_k (else of the last completed epoch), then embeds every user and item.

    Data-parallel (:mod:`rankstack.data_parallel`): every replica draws the same event order and trains on its part
    of each batch (its in-batch negatives are its part's items), DDP averaging the gradients; replica 0 validates
    for all; each finished epoch is a checkpoint, and a restarted run continues after the last one."""
    cfg, dev, net = model.config, model.device_, model.net_
    dp = data_parallel.current()
    n_items = graph.shape[1]
    items_np, users_np, starts_np = flatten_sequences(seqs, val)
    lengths_np = np.searchsorted(users_np, users_np, side="right") - starts_np
    flat, users, starts, lengths = (torch.from_numpy(a).to(dev) for a in (items_np, users_np, starts_np, lengths_np))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    freq = StreamingFrequency(n_items, max(cfg.batch_size // dp.world, 1), cfg.logq_alpha, dev)
    gen, order = dp.generators(cfg.seed, dev)  # per replica: dropout masks and uniform negatives; shared: the order
    validation = Validation(graph, val, cfg.eval_k, dev) if val is not None else None
    item_count = torch.from_numpy(np.asarray(graph.sum(axis=0)).ravel()).to(dev)
    stop: EarlyStopping[dict[str, torch.Tensor]] = EarlyStopping(
        cfg.epochs, cfg.patience, cfg.eval_every, deadline=deadline,
        metric=None if validation is None else validation.key)
    last_state: dict[str, torch.Tensor] | None = None  # the last completed epoch's weights, kept under a budget
    n = flat.numel()
    done, cut = 0, False
    resumed = dp.restore()
    if resumed is not None:
        restore_torch_state(resumed, net, opt, gen, order)
        stop.load_state(resumed["stop"])
        freq.step, freq.last, freq.gap = int(resumed["freq_step"]), resumed["freq_last"], resumed["freq_gap"]
        model.history_, last_state, done = list(resumed["history"]), resumed["last_state"], int(resumed["epoch"])
    step = dp.wrap(Step(net, lambda items, u, hist: batch_loss(model, items, u, hist, freq, gen)))
    stopped_by: StoppedBy = "epochs"
    with new_progress() as progress:
        task = progress.add_task("two-tower", total=cfg.epochs, completed=done)
        for epoch in range(done + 1, cfg.epochs + 1):
            net.train()
            perm = torch.randperm(n, device=dev, generator=order)
            epoch_flat = flat[shuffle_within_users(users, order)] if model.history_order_ == "set" else flat
            total = 0.0
            for start in range(0, n, cfg.batch_size):
                if start and stop.budget_s is not None and dp.any(stop.time_to_stop()):  # one batch at least
                    cut = True
                    break
                whole = perm[start : start + cfg.batch_size]
                if len(whole) < dp.world:
                    break
                pos = dp.part(whole)
                if model.history_order_ == "set":
                    hist = set_history(epoch_flat, pos, starts[pos], lengths[pos], cfg.history_len)
                else:
                    hist = causal_history(flat, pos, starts[pos], cfg.history_len)
                loss = step(epoch_flat[pos], users[pos], hist)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(pos)
                progress.update(task, advance=len(whole) / n)
            if cut:
                stopped_by = "budget"
                break
            done = epoch
            row: dict[str, float] = {"epoch": epoch, "wall_s": stop.elapsed(), "loss": total / n}
            out_of_time = stop.budget_s is not None and dp.any(stop.time_to_stop(row["wall_s"]))
            if validation is not None and stop.due(epoch, out_of_time):
                metrics = stop.validate(lambda: dp.lead(lambda: validation.of_embeddings(
                    *_embed_all(model, _histories(model, seqs, val), item_count))))
                row.update(metrics)
                score = metrics[validation.key]
                stop.record(epoch, score, lambda: {k: v.detach().clone() for k, v in net.state_dict().items()})
                progress.update(task, description=f"two-tower val recall@{cfg.eval_k} {score:.4f}")
            model.history_.append(row)
            if validation is not None and stop.patience_spent:
                stopped_by = "converged"
                break
            if out_of_time and epoch < cfg.epochs:
                stopped_by = "budget"
                break
            if deadline.budget_s is not None and validation is None:
                last_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if dp.checkpoints:  # alone, nothing is built (nor the clock read) for a checkpoint
                dp.checkpoint(epoch, row, {
                    **torch_state(net, opt, gen, order), "epoch": epoch, "stop": stop.state(),
                    "history": model.history_, "last_state": last_state, "freq_step": freq.step,
                    "freq_last": freq.last, "freq_gap": freq.gap})
    best_epoch: int | None = done
    if stop.best_state is not None:
        net.load_state_dict(stop.best_state)
        best_epoch = stop.best_epoch
    elif cut and last_state is not None:
        net.load_state_dict(last_state)
    elif cut:
        best_epoch = None  # the budget ended the first epoch: its partial updates are all there is
    if stopped_by == "budget":
        partial: Literal["discarded", "kept"] | None = ("kept" if best_epoch is None else "discarded") if cut else None
        model.budget_stop_ = BudgetStop(cfg.time_budget_s or 0.0, done, cfg.epochs, round(stop.elapsed(), 3), partial)
    model.fit_summary_ = stop.summary(done, stopped_by, best_epoch)
    train = model.train_
    assert train is not None
    model.item_counts_ = torch.from_numpy(np.asarray(train.sum(axis=0)).ravel()).to(dev)
    model.histories_ = _histories(model, seqs, None)
    model.user_vectors_, model.item_vectors_ = _embed_all(model, model.histories_, model.item_counts_)


def batch_logits(model: TwoTower, items: torch.Tensor, u: torch.Tensor, hist: torch.Tensor,
                 freq: StreamingFrequency, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits [B, B + M] of each event (row) against the in-batch items then M shared uniform ones, each
    ⟨u, v_j⟩/τ − log(q_j + M/N) (:meth:`StreamingFrequency.log_q_mixed`); a duplicate of a row's positive
    among its negatives is −inf. Also the batch's user-id embeddings (None without user ids)."""
    cfg, net = model.config, model.net_
    n_items, m = net.n_items, cfg.uniform_negatives
    freq.update(items)
    keep = (torch.rand(items.shape, device=items.device, generator=gen) >= cfg.id_dropout).float()
    neg = torch.randint(0, n_items, (m,), device=items.device, generator=gen) if m else None
    keep_user = None
    if cfg.user_id_dropout:
        keep_user = (torch.rand(u.shape, device=u.device, generator=gen) >= cfg.user_id_dropout).float()
    with _autocast(model):
        uv = net.users(u, hist, model.user_feats_, keep_user)
        iv = net.items(items, keep, model.item_feats_)
        logits = (uv @ iv.T).float() / cfg.temperature - freq.log_q_mixed(items, m, n_items).unsqueeze(0)
        same = items.unsqueeze(0) == items.unsqueeze(1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
        if neg is not None:
            nv = net.items(neg, torch.ones_like(neg, dtype=torch.float32), model.item_feats_)
            neg_logits = (uv @ nv.T).float() / cfg.temperature - freq.log_q_mixed(neg, m, n_items).unsqueeze(0)
            neg_logits = neg_logits.masked_fill(items.unsqueeze(1) == neg.unsqueeze(0), float("-inf"))
            logits = torch.cat([logits, neg_logits], 1)
    return logits, None if net.user_id is None else net.user_id(u)


def batch_loss(model: TwoTower, items: torch.Tensor, u: torch.Tensor, hist: torch.Tensor, freq: StreamingFrequency,
               gen: torch.Generator) -> torch.Tensor:
    """Cross-entropy of each row's own item over :func:`batch_logits`, plus ``user_l2``·mean_b ‖e_{u_b}‖²."""
    logits, user_emb = batch_logits(model, items, u, hist, freq, gen)
    loss = F.cross_entropy(logits, torch.arange(len(items), device=items.device))
    if model.config.user_l2 and user_emb is not None:
        loss = loss + model.config.user_l2 * user_emb.float().pow(2).sum(1).mean()
    return loss


@torch.no_grad()
def _embed_all(model: TwoTower, histories: torch.Tensor, item_count: torch.Tensor, batch: int = 8192
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """All user and item vectors; items without training interactions use their features only."""
    net, dev = model.net_, model.device_
    net.eval()
    n_users, n_items = net.n_users, net.n_items
    ids = torch.arange(n_items, device=dev)
    items = torch.cat([net.items(ids[s : s + batch], (item_count[s : s + batch] > 0).float(), model.item_feats_)
                       for s in range(0, n_items, batch)])
    uids = torch.arange(n_users, device=dev)
    users = torch.cat([net.users(uids[s : s + batch], histories[s : s + batch], model.user_feats_)
                       for s in range(0, n_users, batch)])
    return users.float(), items.float()
