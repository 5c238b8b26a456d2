"""Fit the neural candidate ranker on grouped candidate rows: listwise softmax cross-entropy, early stopping on the
validation groups' NDCG@10. Loading a fitted ranker never imports this module.

Loss of one group (one request) with scores s_i (the network's output plus the ``base`` prior) and 0/1 labels y_i:

    L = − Σ_i (y_i / Σ_j y_j) · log( exp(s_i) / Σ_j exp(s_j) )

the softmax cross-entropy of Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach"
(ListNet's top-one form, ICML 2007), which Bruch et al. (ICTIR 2019) show bounds NDCG for binary relevance;
averaged over the groups of a step. Groups without a positive carry no gradient and are left out.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from rankstack.evaluation.early_stopping_train import EarlyStopping
from rankstack.evaluation.fit_summary import StoppedBy
from rankstack.evaluation.metrics import ndcg_at_k
from rankstack.ranking.lambdarank import prior_scores
from rankstack.ranking.lambdarank_train import RankingRows
from rankstack.ranking.neural_ranker import NeuralRankerConfig, RankingNet

Log = Callable[[str], None]


def padded_index(groups: np.ndarray) -> np.ndarray:
    """[G, max size] row index of each group's rows (rows are group by group), -1 past a group's end."""
    sizes = np.asarray(groups, np.int64)
    width = int(sizes.max(initial=0))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    slots = np.arange(width)[None, :]
    return np.where(slots < sizes[:, None], starts[:, None] + slots, -1)


def softmax_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over groups of −Σ_i (y_i / Σ_j y_j)·log softmax(s)_i; ``scores``, ``labels``, ``mask`` [G, C] (mask:
    real rows); groups without a positive count zero."""
    logp = torch.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=1).masked_fill(~mask, 0.0)
    target = labels * mask
    target = target / target.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return -(target * logp).sum(dim=1).mean()


def group_ndcg(scores: np.ndarray, rows: RankingRows, k: int = 10) -> float:
    """Mean NDCG@k over the groups with a positive: their rows ordered by descending score (ties: row order)."""
    index = padded_index(rows.groups)
    full = np.where(index >= 0, scores[np.maximum(index, 0)], -np.inf)
    labels = np.where(index >= 0, rows.labels[np.maximum(index, 0)], 0.0)
    order = np.argsort(-full, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(labels, order, axis=1)
    positives = (labels > 0).sum(axis=1)
    keep = positives > 0
    return float(ndcg_at_k(hits[keep], positives[keep], k).mean()) if keep.any() else 0.0


def _scores(net: RankingNet, z: torch.Tensor, prior: torch.Tensor, chunk: int = 65_536) -> np.ndarray:
    """Scores of scaled inputs ``z`` in eval mode, the prior added."""
    net.eval()
    with torch.no_grad():
        out = torch.cat([net.body(z[s: s + chunk]) for s in range(0, len(z), chunk)]) if len(z) else z[:, 0]
    return (out.double() + prior).numpy()


IMPORTANCE_GROUPS = 256  # validation groups the permutation importance reads (a seeded sample; all: +11 s CPU)


def permutation_importance(net: RankingNet, rows: RankingRows, names: Sequence[str], prior: torch.Tensor,
                           seed: int = 0, k: int = 10, groups: int = IMPORTANCE_GROUPS) -> dict[str, float]:
    """Per feature: NDCG@k of ``rows`` minus NDCG@k with that column shuffled across rows (Breiman, "Random
    Forests", 2001, §10; Fisher et al., JMLR 2019), largest first; a drop near 0: the network does not use it.
    Reads a seeded sample of at most ``groups`` groups."""
    rng = np.random.default_rng(seed)
    if len(rows.groups) > groups:
        index = padded_index(rows.groups)
        keep = np.sort(rng.choice(len(rows.groups), groups, replace=False))
        picked = index[keep][index[keep] >= 0]  # row-major: group by group, in order
        rows = RankingRows(rows.features[picked], rows.labels[picked], rows.groups[keep])
        prior = prior[torch.from_numpy(picked)]
    x = torch.from_numpy(np.ascontiguousarray(rows.features, np.float32))
    with torch.no_grad():
        full = group_ndcg(_scores(net, net.scale(x), prior), rows, k)
        drops = {}
        for j, name in enumerate(names):
            shuffled = x.clone()
            shuffled[:, j] = x[torch.from_numpy(rng.permutation(len(x))), j]
            drops[name] = round(full - group_ndcg(_scores(net, net.scale(shuffled), prior), rows, k), 5)
    return dict(sorted(drops.items(), key=lambda p: -p[1]))


def fit_neural(train: RankingRows, validation: RankingRows, names: Sequence[str], config: NeuralRankerConfig, *,
               seed: int = 0, base: str | None = None, eval_at: int = 10,
               log: Log | None = None) -> tuple[RankingNet, dict[str, Any]]:
    """(fitted network, report: best epoch, validation NDCG@``eval_at`` per epoch, train loss per epoch, sizes).

    Adam over shuffled batches of ``batch_groups`` groups; after an epoch without validation gain, back to the
    best weights with the step times ``lr_decay``; stops after ``patience`` such epochs, at ``epochs`` or when
    ``time_budget_s`` is spent, and keeps the best epoch's weights. ``base`` adds ``prior_scores`` to every
    score (the network learns corrections to that source's order).
    """
    train, validation = train.with_positives(), validation.with_positives()
    if not len(train.groups) or not len(validation.groups):
        raise ValueError(f"neural ranker: nothing to learn from ({len(train.groups)} training and "
                         f"{len(validation.groups)} validation groups with a positive candidate)")
    if train.features.shape[1] != len(names) or validation.features.shape[1] != len(names):
        raise ValueError(f"neural ranker: {len(names)} feature names for rows of {train.features.shape[1]} "
                         f"(training) and {validation.features.shape[1]} (validation) columns")
    say = log or (lambda _m: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(train, validation, names, config, seed, base, eval_at, say)
    finally:
        torch.set_num_threads(threads)


def _fit(train: RankingRows, validation: RankingRows, names: Sequence[str], cfg: NeuralRankerConfig, seed: int,
         base: str | None, eval_at: int, say: Log) -> tuple[RankingNet, dict[str, Any]]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    n_missing = int((~np.isfinite(train.features)).any(axis=0).sum())
    net = RankingNet(train.features.shape[1], n_missing, cfg)
    net.scale.fit(train.features, cfg.log_inputs)
    with torch.no_grad():
        z_train = net.scale(torch.from_numpy(np.ascontiguousarray(train.features, np.float32)))
        z_valid = net.scale(torch.from_numpy(np.ascontiguousarray(validation.features, np.float32)))
    p_train = torch.from_numpy(prior_scores(train.features, names, base)).float()
    p_valid = torch.from_numpy(prior_scores(validation.features, names, base))
    index = torch.from_numpy(padded_index(train.groups))
    labels = torch.from_numpy(np.asarray(train.labels, np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    stop: EarlyStopping[dict[str, torch.Tensor]] = EarlyStopping(cfg.epochs, cfg.patience + 1, 1, cfg.time_budget_s,
                                                                 metric=f"ndcg@{eval_at}")
    losses: list[float] = []
    stopped_by: StoppedBy = "epochs"
    done = 0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        total, cut = 0.0, False
        order = rng.permutation(len(train.groups))
        for start in range(0, len(order), cfg.batch_groups):
            if start and stop.time_to_stop():
                cut = True
                break
            idx = index[torch.from_numpy(order[start: start + cfg.batch_groups])]
            mask = idx >= 0
            rows = idx[mask]
            scores = torch.zeros(idx.shape)
            scores[mask] = net.body(z_train[rows]) + p_train[rows]
            target = torch.zeros(idx.shape)
            target[mask] = labels[rows]
            loss = softmax_loss(scores, target, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if cut:
            stopped_by = "budget"
            break
        done = epoch
        losses.append(round(total / len(order), 5))
        ndcg = stop.validate(lambda: {"ndcg": group_ndcg(_scores(net, z_valid, p_valid), validation, eval_at)})["ndcg"]
        gained = ndcg > stop.best
        stop.record(epoch, ndcg, lambda: copy.deepcopy(net.state_dict()))
        say(f"ranker neural: epoch {epoch} train loss {losses[-1]:.4f} validation ndcg@{eval_at} {ndcg:.4f}")
        if not gained:
            if stop.patience_spent:
                stopped_by = "converged"
                break
            assert stop.best_state is not None
            net.load_state_dict(stop.best_state)  # back to the best epoch, on with a smaller step
            for group in opt.param_groups:
                group["lr"] *= cfg.lr_decay
        if epoch < cfg.epochs and stop.time_to_stop():
            stopped_by = "budget"
            break
    if stop.best_state is not None:
        net.load_state_dict(stop.best_state)
    net.eval()
    importance = permutation_importance(net, validation, names, p_valid, seed, eval_at) if cfg.importance else None
    summary = stop.summary(done, stopped_by, stop.best_epoch or None)
    report = {
        "best_epoch": summary.best_epoch, f"validation_ndcg@{eval_at}": round(stop.best, 5) if stop.curve else None,
        "validation_curve": [round(v, 5) for _, v in stop.curve], "train_loss": losses, "epochs_run": done,
        "stopped_by": stopped_by, "train_groups": len(train.groups), "train_rows": len(train.labels),
        "validation_groups": len(validation.groups), "validation_rows": len(validation.labels),
        "missing_indicators": [names[int(j)] for j in net.scale.missing], "loss": "softmax cross-entropy",
        "config": cfg.model_dump(mode="json"), "seed": seed, "base": base,
        f"importance_ndcg@{eval_at}_drop": importance,
        "fit_s": round(time.perf_counter() - t0, 2), "fit_cpu_s": round(time.process_time() - cpu0, 2),
    }
    return net, report
