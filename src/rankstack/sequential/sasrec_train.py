"""Training SASRec: the windows of the training sequences, the loss, the epoch loop with early stopping on each
user's held-out last item, and stops by the wall-clock budget. :meth:`SASRec.fit` calls :func:`train_sasrec`;
loading a trained model never imports this module."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

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
from rankstack.retrieval.source import BudgetStop

if TYPE_CHECKING:  # the model imports this module inside fit(): no import back at run time
    from rankstack.sequential.sasrec import SASRec


class SequenceTable:
    """All training sequences in one left-aligned tensor [U, Lmax] on the device, plus their lengths."""

    def __init__(self, sequences: Sequence[np.ndarray], device: torch.device) -> None:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        width = max(1, int(lengths.max(initial=1)))
        table = np.zeros((len(sequences), width), dtype=np.int64)
        for row, s in enumerate(sequences):
            table[row, : len(s)] = np.asarray(s, dtype=np.int64) + 1
        self.table = torch.from_numpy(table).to(device)
        self.lengths = torch.from_numpy(lengths).to(device)

    def windows(self, rows: torch.Tensor, max_len: int, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) [B, max_len] from the items before each ``ends`` (exclusive) of ``rows``.

        inputs are items [e-1-max_len, e-1), targets the next item at each position; both left-padded.
        """
        offsets = torch.arange(-max_len - 1, 0, device=rows.device)
        idx = ends[:, None] + offsets[None, :]
        window = self.table[rows[:, None], idx.clamp_min(0)] * (idx >= 0)
        return window[:, :-1], window[:, 1:]

    def sample_ends(self, rows: torch.Tensor, max_len: int, crop: str, gen: torch.Generator) -> torch.Tensor:
        """Window ends: the sequence end (``last``), or uniform over ends that fill a whole window (``random``)."""
        lengths = self.lengths[rows]
        if crop == "last":
            return lengths
        low = torch.minimum(lengths, torch.full_like(lengths, max_len + 1))
        span = (lengths - low + 1).clamp_min(1)
        draw = torch.rand(rows.shape, device=rows.device, generator=gen)
        return low + (draw * span).long().clamp_max(span - 1)


def train_sasrec(model: SASRec, dataset: Dataset, start: Mapping[str, torch.Tensor] | None = None) -> None:
    """Fit ``model`` on every user's sequence; with ``validation``, each user's last item (users with three or
    more events) is held out to early-stop on. One :class:`Deadline` of ``time_budget_s`` covers the whole fit.
    ``start``: the weights to start from (a network of the same shape) instead of a fresh initialisation; they
    are validated as epoch 0 and kept unless an epoch beats them."""
    cfg = model.config
    deadline = Deadline(cfg.time_budget_s)
    model.train_ = dataset.interaction_matrix(binary=True)
    model.device_ = resolve_device(cfg.device)
    model.n_items_ = dataset.n_items
    model.histories_ = [np.asarray(s, dtype=np.int64) for s in dataset.sequences()]
    torch.manual_seed(cfg.seed)
    model.net_ = model.new_net()
    if start is not None:
        model.net_.load_state_dict(start)
    model.history_ = []
    if cfg.validation:
        fit_seqs = [s[:-1] if len(s) >= 3 else s for s in model.histories_]
        val_users = np.array([u for u, s in enumerate(model.histories_) if len(s) >= 3], dtype=np.int64)
    else:
        fit_seqs, val_users = model.histories_, np.zeros(0, dtype=np.int64)
    _train(model, fit_seqs, val_users, deadline, warm=start is not None)


def _train(model: SASRec, seqs: list[np.ndarray], val_users: np.ndarray, deadline: Deadline,
           warm: bool = False) -> None:
    """AdamW over shuffled users each epoch; keeps the weights of the best validation NDCG (without validation:
    of the last completed epoch; ``warm``: the starting weights are validated as epoch 0 first). A
    ``time_budget_s`` that runs out inside an epoch discards that epoch's updates (back to a completed epoch's
    weights) unless no epoch was completed yet; see ``budget_stop_``.

    Data-parallel (:mod:`rankstack.data_parallel`): every replica draws the same user order and trains on its part
    of each batch, DDP averaging the gradients; replica 0 validates for all; each finished epoch is a checkpoint,
    and a restarted run continues after the last one."""
    cfg, dev, net = model.config, model.device_, model.net_
    dp = data_parallel.current()
    table = SequenceTable(seqs, dev)
    rows = torch.from_numpy(np.flatnonzero([len(s) >= 2 for s in seqs])).to(dev)
    if rows.numel() == 0:
        raise ValueError("SASRec needs at least one user with two or more events to train on")
    gen, order = dp.generators(cfg.seed, dev)  # per replica: negatives and window ends; shared: the order
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    validate = _validator(model, seqs, val_users) if len(val_users) else None
    stop: EarlyStopping[dict[str, torch.Tensor]] = EarlyStopping(
        cfg.epochs, cfg.patience, cfg.eval_every, deadline=deadline,
        metric=None if validate is None else f"val_ndcg@{cfg.eval_k}")
    last_state: dict[str, torch.Tensor] | None = None  # end of the last completed epoch, kept under a budget
    model.best_epoch_, model.budget_stop_ = 0, None
    done = 0
    resumed = dp.restore()
    if resumed is not None:
        restore_torch_state(resumed, net, opt, gen, order)
        stop.load_state(resumed["stop"])
        model.history_, model.best_epoch_, last_state = list(resumed["history"]), resumed["best_epoch"], \
            resumed["last_state"]
        done = int(resumed["epoch"])
    elif warm and validate is not None:  # the starting weights compete too: continuing must beat them
        metrics = stop.validate(lambda: dp.lead(validate))
        stop.record(0, metrics[f"val_ndcg@{cfg.eval_k}"], lambda: copy.deepcopy(net.state_dict()))
        model.history_.append({"epoch": 0, "wall_s": stop.elapsed(), **metrics})
    step = dp.wrap(Step(net, lambda inputs, targets: _loss(model, inputs, targets, gen)))
    stopped_by: StoppedBy = "epochs"
    with new_progress() as progress:
        task = progress.add_task("SASRec", total=cfg.epochs, completed=done)
        for epoch in range(done + 1, cfg.epochs + 1):
            loss_sum, cut = _epoch(model, step, table, rows, opt, (order, gen), stop,
                                   lambda share: progress.update(task, advance=share))
            wall_s = stop.elapsed()
            if cut:  # back to the best validated or else the last completed epoch; none yet: keep what ran
                if stop.best_state is None and last_state is not None:
                    stop.best_state, model.best_epoch_ = last_state, epoch - 1
                partial: Literal["discarded", "kept"] = "kept" if stop.best_state is None else "discarded"
                model.budget_stop_ = _stopped(model, epoch - 1, wall_s, partial)
                stopped_by = "budget"
                break
            done = epoch
            row: dict[str, float] = {"epoch": epoch, "wall_s": wall_s, "loss": loss_sum / rows.numel()}
            out_of_time = stop.budget_s is not None and dp.any(stop.time_to_stop(wall_s))
            if validate is None:
                model.best_epoch_ = epoch
            elif stop.due(epoch, out_of_time):
                metrics = stop.validate(lambda: dp.lead(validate))
                row.update(metrics)
                score = metrics[f"val_ndcg@{cfg.eval_k}"]
                stop.record(epoch, score, lambda: copy.deepcopy(net.state_dict()))
                model.best_epoch_ = stop.best_epoch
                progress.update(task, description=f"SASRec val ndcg@{cfg.eval_k} {score:.4f}")
            model.history_.append(row)
            if stop.patience_spent:
                stopped_by = "converged"
                break
            if out_of_time and epoch < cfg.epochs:
                model.budget_stop_ = _stopped(model, epoch, wall_s, None)
                stopped_by = "budget"
                break
            if cfg.time_budget_s is not None:
                last_state = copy.deepcopy(net.state_dict())
            if dp.checkpoints:  # alone, nothing is built (nor the clock read) for a checkpoint
                dp.checkpoint(epoch, row, {
                    **torch_state(net, opt, gen, order), "epoch": epoch, "stop": stop.state(),
                    "history": model.history_, "best_epoch": model.best_epoch_, "last_state": last_state})
    if stop.best_state is not None:
        net.load_state_dict(stop.best_state)
    net.eval()
    best = model.best_epoch_ if model.best_epoch_ > 0 or (warm and validate is not None) else None
    model.fit_summary_ = stop.summary(done, stopped_by, best)


def _epoch(model: SASRec, step: Callable[..., torch.Tensor], table: SequenceTable, rows: torch.Tensor,
           opt: torch.optim.Optimizer, gens: tuple[torch.Generator, torch.Generator],
           stop: EarlyStopping[dict[str, torch.Tensor]], advance: Callable[[float], None]) -> tuple[float, bool]:
    """One pass over the training users in shuffled batches (``gens``: the order's generator, the batches'):
    (Σ batch loss × batch size, whether the time budget ran out before the last batch); ``advance`` gets each
    batch's share of the epoch. Data-parallel, each replica takes its part of every batch (a last batch smaller
    than the number of replicas is left out) and the sums are this replica's."""
    cfg, dev, dp = model.config, model.device_, data_parallel.current()
    order, gen = gens
    model.net_.train()
    perm = rows[torch.randperm(rows.numel(), device=dev, generator=order)]
    total = torch.zeros((), device=dev)
    for start in range(0, perm.numel(), cfg.batch_size):
        if start and stop.budget_s is not None and dp.any(stop.time_to_stop()):  # one batch at least per epoch
            return float(total), True  # the budget holds inside an epoch too (large catalogs on a CPU)
        whole = perm[start : start + cfg.batch_size]
        if len(whole) < dp.world:
            break
        batch = dp.part(whole)
        inputs, targets = table.windows(batch, cfg.max_len, table.sample_ends(batch, cfg.max_len, cfg.crop, gen))
        loss = step(inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * len(batch)
        advance(len(whole) / perm.numel())
    return float(total), False


def _stopped(model: SASRec, epochs_done: int, wall_s: float,
             partial: Literal["discarded", "kept"] | None) -> BudgetStop:
    """The record of a stop by ``time_budget_s`` (set, since only it stops a run early this way)."""
    budget = model.config.time_budget_s
    assert budget is not None
    return BudgetStop(budget, epochs_done, model.config.epochs, round(wall_s, 3), partial)


def _loss(model: SASRec, inputs: torch.Tensor, targets: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Cross-entropy of the next item at every non-pad position (full catalog or sampled)."""
    with model.autocast():
        hidden = model.net_(inputs)
        mask = targets > 0
        h, y = hidden[mask], targets[mask] - 1
        items = model.net_.item_table()
        n_neg, n_items = model.config.sampled_negatives, model.n_items_
        if n_neg == 0 or n_neg >= n_items:
            return F.cross_entropy(h @ items.T, y)
        neg = torch.randint(0, n_items, (n_neg,), device=h.device, generator=gen)
        pos_logit = (h * items[y]).sum(-1, keepdim=True)
        neg_logits = (h @ items[neg].T).masked_fill(neg[None, :] == y[:, None], float("-inf"))
        logits = torch.cat([pos_logit, neg_logits], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(y))


def _validator(model: SASRec, seqs: Sequence[np.ndarray], val_users: np.ndarray) -> Callable[[], dict[str, float]]:
    """Full-ranking NDCG@k / HR@k of each validation user's held-out last item, ``seqs`` items excluded."""
    k, shape = model.config.eval_k, (len(seqs), model.n_items_)
    rows = np.repeat(np.arange(len(seqs)), [len(h) for h in seqs])
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(seqs))), shape=shape)
    targets = np.array([model.histories_[u][-1] for u in val_users], dtype=np.int64)
    held = sp.csr_matrix((np.ones(len(val_users), np.float32), (val_users, targets)), shape=shape)
    validation = Validation(seen, held, k, model.device_, names=("ndcg", "hr"))

    def run() -> dict[str, float]:
        return validation.of_scores(lambda users: model.score_histories([seqs[u] for u in users]))

    return run
