"""Training the multi-task ranker's network: the losses, the fit (encoder, network, starting rates) and the epoch
loop with early stopping on validation loss. :meth:`MultiTaskRanker.fit` calls :func:`train_network`; loading a
trained ranker never imports this module."""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from rankstack import data_parallel
from rankstack.data_parallel import Step, restore_torch_state, torch_state
from rankstack.errors import ConfigError
from rankstack.evaluation.early_stopping_train import Deadline
from rankstack.evaluation.fit_summary import FitSummary, StoppedBy
from rankstack.progress import new_progress
from rankstack.ranking.impression_features import EncodedBatch, FeatureEncoder

if TYPE_CHECKING:  # the model imports this module inside fit(): no import back at run time
    from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

LOG = logging.getLogger(__name__)


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 − e^x) for x < 0, stable on both sides of −log 2."""
    x = torch.clamp(log_p, max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def bce_log_prob(log_p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy from log-probabilities: −mean[y·log p + (1 − y)·log(1 − p)]."""
    return -(y * log_p + (1 - y) * log1mexp(log_p)).mean()

def multitask_loss(out: dict[str, torch.Tensor], batch: EncodedBatch, *, cvr_aux_weight: float = 0.0,
                   value_scale: float = 1.0) -> torch.Tensor:
    """Σ over heads: BCE(pCTR, click) + BCE(pCTCVR, conversion) over all impressions
    [+ w·BCE(pCVR, conversion | clicked)] [+ mean((v̂ − revenue)² / scale²) over conversions].
    """
    y = batch.labels
    loss = torch.zeros((), device=batch.cat.device)
    if "click" in out:
        loss = loss + bce_log_prob(out["click"], y["click"])
    if "conversion" in out:
        loss = loss + bce_log_prob(out["conversion"], y["conversion"])
    if cvr_aux_weight > 0 and "cvr_logit" in out:
        clicked = y["click"] > 0
        if clicked.any():
            loss = loss + cvr_aux_weight * F.binary_cross_entropy_with_logits(
                out["cvr_logit"][clicked], y["conversion"][clicked])
    if "value" in out:
        converted = y["conversion"] > 0
        if converted.any():
            err = (out["value"][converted] - y["revenue"][converted]) / value_scale
            loss = loss + (err**2).mean()
    return loss


def check_labels(cfg: MultiTaskConfig, table: pl.DataFrame) -> None:
    """Refuse objectives without a positive label in ``table``, and expected-payout revenue without payouts."""
    need = ["click"] if "click" in cfg.objectives else []
    need += ["conversion"] if "conversion" in cfg.objectives else []
    need += ["revenue"] if "revenue" in cfg.objectives else []
    for label in need:
        if label not in table.columns or table.get_column(label).sum() == 0:
            raise ConfigError(f"objective {label!r} has no positive labels in the training impressions; "
                              f"drop it (e.g. --set objectives=[click])")
    if "revenue" in cfg.objectives and cfg.revenue_mode == "expected_payout" and cfg.payout_column not in \
            table.columns:
        raise ConfigError(f"revenue_mode expected_payout needs the item column {cfg.payout_column!r}; "
                          "use revenue_mode=regression")


def base_rates(train: pl.DataFrame, exam: float) -> dict[str, float]:
    """Starting rates per tower: attraction = CTR / σ(initial exam logit), cvr = conversions / clicks."""
    clicks = float(train.get_column("click").sum()) if "click" in train.columns else 0.0
    conversions = float(train.get_column("conversion").sum()) if "conversion" in train.columns else 0.0
    n = max(train.height, 1)
    return {"attract": min(clicks / n / exam, 0.99), "cvr": conversions / max(clicks, 1.0),
            "conversion": conversions / n}


def train_network(ranker: MultiTaskRanker, train: pl.DataFrame, validation: pl.DataFrame) -> None:
    """Fit the encoder on ``train`` and train the network with early stopping on ``validation`` loss; one
    :class:`Deadline` of ``time_budget_s`` covers the whole fit (encoding included)."""
    cfg = ranker.config
    deadline = Deadline(cfg.time_budget_s)
    check_labels(cfg, train)
    torch.manual_seed(cfg.seed)
    enc = FeatureEncoder(cfg.features, cfg.payout_column).fit(train)
    tr, va = enc.transform(train).to(ranker.device), enc.transform(validation).to(ranker.device)
    rev = tr.labels.get("revenue")
    conv = tr.labels.get("conversion")
    value_scale = float(rev[conv > 0].mean()) if rev is not None and conv is not None and conv.sum() > 0 else 1.0
    ranker.encoder_ = enc
    net = ranker.new_net(enc, value_scale)
    net.initialise_bias(base_rates(train, exam=0.88 if cfg.position_bias else 1.0))
    ranker.net_ = net.to(ranker.device)
    _train(ranker, tr, va, value_scale, deadline)


def _loss(ranker: MultiTaskRanker, batch: EncodedBatch, value_scale: float) -> torch.Tensor:
    """The multi-task loss of the ranker's network on ``batch``."""
    assert ranker.net_ is not None
    return multitask_loss(ranker.net_(batch), batch, cvr_aux_weight=ranker.config.cvr_aux_weight,
                          value_scale=value_scale)


def _train(ranker: MultiTaskRanker, tr: EncodedBatch, va: EncodedBatch, value_scale: float,
           deadline: Deadline) -> None:
    """Adam over shuffled rows; after an epoch without validation gain, back to the best weights with the step
    times ``lr_decay``; stops after ``patience`` such epochs, at ``epochs`` or at the ``deadline`` (asked before
    every batch, keeping back one validation pass's time; a cut epoch is dropped) and keeps the best.

    Data-parallel (:mod:`rankstack.data_parallel`): every replica draws the same row order and trains on its part of
    each batch, DDP averaging the gradients; replica 0 computes the validation loss for all; each finished epoch is
    a checkpoint, and a restarted run continues after the last one."""
    cfg, net = ranker.config, ranker.net_
    assert net is not None
    dp = data_parallel.current()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)  # draws only the order: the same on every replica
    best, best_state, stale, best_epoch = np.inf, copy.deepcopy(net.state_dict()), 0, None
    ranker.history_ = []
    curve: list[tuple[int, float]] = []
    done, validation_s = 0, 0.0
    resumed = dp.restore()
    if resumed is not None:
        restore_torch_state(resumed, net, opt, gen)
        best, best_state, stale = float(resumed["best"]), resumed["best_state"], int(resumed["stale"])
        best_epoch = None if resumed["best_epoch"] < 0 else int(resumed["best_epoch"])
        ranker.history_, curve = list(resumed["history"]), [(int(e), float(v)) for e, v in resumed["curve"]]
        done, validation_s = int(resumed["epoch"]), float(resumed["validation_s"])
        deadline.t0 = time.perf_counter() - float(resumed["elapsed"])
    step = dp.wrap(Step(net, lambda batch: _loss(ranker, batch, value_scale)))
    stopped_by: StoppedBy = "epochs"
    with new_progress() as progress:
        task = progress.add_task("multitask", total=cfg.epochs, completed=done)
        for epoch in range(done + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            order = torch.randperm(len(tr), generator=gen).to(ranker.device)
            total, cut = 0.0, False
            for start in range(0, len(tr), cfg.batch_size):
                if start and deadline.budget_s is not None and dp.any(deadline.expired(validation_s)):
                    cut = True  # every epoch it starts runs one batch at least
                    break
                whole = order[start : start + cfg.batch_size]
                if len(whole) < dp.world:
                    break
                batch = tr.take(dp.part(whole))
                loss = step(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
                progress.update(task, advance=len(whole) / len(tr))
            if cut:
                stopped_by = "budget"
                break
            done = epoch
            t1 = deadline.elapsed()
            val = dp.lead(lambda: _eval_loss(ranker, va, value_scale))
            validation_s = deadline.elapsed() - t1
            curve.append((epoch, val))
            ranker.history_.append({"epoch": epoch, "train_loss": total / len(tr), "validation_loss": val,
                                    "seconds": round(time.perf_counter() - t0, 2)})
            LOG.info("epoch %s", ranker.history_[-1])
            if val < best - 1e-6:
                best, best_state, stale, best_epoch = val, copy.deepcopy(net.state_dict()), 0, epoch
            else:
                stale += 1
                if stale > cfg.patience:
                    stopped_by = "converged"
                    break
                net.load_state_dict(best_state)  # back to the best epoch, continue with a smaller step
                for group in opt.param_groups:
                    group["lr"] *= cfg.lr_decay
            if epoch < cfg.epochs and deadline.budget_s is not None and dp.any(deadline.expired(validation_s)):
                stopped_by = "budget"
                break
            if dp.checkpoints:  # alone, nothing is built (nor the clock read) for a checkpoint
                dp.checkpoint(epoch, ranker.history_[-1], {
                    **torch_state(net, opt, gen), "epoch": epoch, "best": best, "best_state": best_state,
                    "stale": stale, "best_epoch": -1 if best_epoch is None else best_epoch, "history": ranker.history_,
                    "curve": [list(c) for c in curve], "validation_s": validation_s, "elapsed": deadline.elapsed()})
    net.load_state_dict(best_state)
    ranker.fit_summary_ = FitSummary(done, best_epoch, stopped_by, cfg.epochs, "validation_loss", tuple(curve),
                                     higher_is_better=False, budget_s=cfg.time_budget_s,
                                     wall_s=round(deadline.elapsed(), 3))


@torch.no_grad()
def _eval_loss(ranker: MultiTaskRanker, va: EncodedBatch, value_scale: float, chunk: int = 65_536) -> float:
    """The mean loss over ``va`` in eval mode, in chunks of ``chunk`` rows."""
    assert ranker.net_ is not None
    ranker.net_.eval()
    total = sum(float(_loss(ranker, va.take(slice(s, s + chunk)), value_scale)) * min(chunk, len(va) - s)
                for s in range(0, len(va), chunk))
    return total / max(len(va), 1)
