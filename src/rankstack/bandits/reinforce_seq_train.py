"""Training the sequential top-K REINFORCE policy (:mod:`rankstack.bandits.reinforce_seq`) from logged rows.

Each logged row i is (s_i, a_i, r_i, β_i): the frozen SASRec state of the user's history before the event, the
shown item, its reward and the logging policy's propensity (NaN when the log has none). The gradient ascended
(Chen et al., WSDM 2019, eq. 6 with the top-K multiplier of Sec. 4.3) is

    Σ_i min(π(a_i|s_i) / β_i, c) · λ_K(π(a_i|s_i)) · r_i · ∇ log π(a_i|s_i),   λ_K(π) = K(1 − π)^{K−1},

the weight held fixed (no gradient through it); ``correction=False`` uses weight 1 (plain REINFORCE on the log,
which imitates β·r). Rows with r = 0 add nothing, so only rewarded rows are visited. Missing β_i come from a
behaviour head fitted first by maximum likelihood, max Σ_i log β(a_i|s_i) over every training row.

With ``negatives = m`` both heads use a sampled softmax: m shared negatives S ~ Q per batch and

    log π̂(a|s) = o_a − log(e^{o_a} + Σ_{j∈S, j≠a} e^{o_j − log(m·Q(j))}),

whose denominator's expectation is the full partition function (the logQ correction; a drawn negative equal to
the row's own item is masked). When S is every item once and Q uniform this is exactly the full softmax.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rankstack.bandits.reinforce_seq import SeqReinforceConfig, SeqReinforcePolicy, SoftmaxHead, topk_weights

Log = Callable[[str], None]


@dataclass(frozen=True)
class LoggedRows:
    """Logged events in log order: ``states`` [n, D], ``items`` [n], ``rewards`` [n], ``propensity`` [n] (NaN:
    not logged)."""

    states: torch.Tensor
    items: torch.Tensor
    rewards: torch.Tensor
    propensity: torch.Tensor

    def __post_init__(self) -> None:
        n = self.states.shape[0]
        for name in ("items", "rewards", "propensity"):
            got = getattr(self, name)
            if got.ndim != 1 or got.shape[0] != n:
                raise ValueError(f"LoggedRows.{name} must be 1-D of length {n} (the rows of states), "
                                 f"got shape {tuple(got.shape)}")
        bad = ~torch.isnan(self.propensity) & ((self.propensity <= 0) | (self.propensity > 1))
        if bool(bad.any()):
            raise ValueError(f"LoggedRows.propensity must be in (0, 1] or NaN, got {float(self.propensity[bad][0])}")

    def take(self, index: torch.Tensor) -> LoggedRows:
        """The rows at ``index``."""
        return LoggedRows(self.states[index], self.items[index], self.rewards[index], self.propensity[index])


def log_proposal(config: SeqReinforceConfig, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """log Q [n_items]: uniform, or the shown items' frequency (+1 each, so every item can be drawn)."""
    if config.proposal == "uniform":
        return torch.full((n_items,), -math.log(n_items))
    counts = torch.bincount(items, minlength=n_items).double() + 1.0
    return (counts / counts.sum()).log().float()


def draw_negatives(log_q: torch.Tensor, m: int, gen: torch.Generator) -> torch.Tensor:
    """m item ids drawn with replacement from Q = exp(log_q)."""
    return torch.multinomial(log_q.exp(), m, replacement=True, generator=gen)


def sampled_log_prob(head: SoftmaxHead, states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                     log_q: torch.Tensor) -> torch.Tensor:
    """log π̂(a|s) = o_a − logsumexp(o_a, {o_j − log(m·Q(j))}_{j∈S, j≠a}) for each row [B]."""
    target = head.pair_logits(states, targets)
    neg = head.shared_logits(states, negatives) - (math.log(len(negatives)) + log_q[negatives])
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    return target - torch.logsumexp(torch.cat([target[:, None], neg], dim=1), dim=1)


def log_prob(head: SoftmaxHead, states: torch.Tensor, targets: torch.Tensor, config: SeqReinforceConfig,
             log_q: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """log π(a|s) of each row: full softmax when ``negatives`` is None, else the sampled estimate."""
    if config.negatives is None:
        return torch.log_softmax(head(states), dim=-1).gather(1, targets[:, None])[:, 0]
    return sampled_log_prob(head, states, targets, draw_negatives(log_q, config.negatives, gen), log_q)


def full_probs_of(head: SoftmaxHead, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """π(a_i|s_i) with the full softmax, in chunks that keep [chunk, n_items] under ~16 MB."""
    chunk = max(1, 2**22 // max(1, head.n_items))
    out = []
    with torch.no_grad():
        for start in range(0, len(items), chunk):
            logits = head(states[start:start + chunk])
            out.append(torch.softmax(logits, -1).gather(1, items[start:start + chunk, None])[:, 0])
    return torch.cat(out) if out else torch.zeros(0)


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A shuffled split of range(n) into batches of ``size``."""
    return list(torch.randperm(n, generator=gen).split(size)) if n else []


def fit_behaviour(rows: LoggedRows, item_table: torch.Tensor, config: SeqReinforceConfig,
                  gen: torch.Generator) -> SoftmaxHead:
    """β(a|s): a head fitted by maximum likelihood of the logged items (Adam, ``behaviour_epochs``)."""
    head = SoftmaxHead(item_table, warm_start=False)
    opt = torch.optim.Adam(head.parameters(), lr=config.lr)
    log_q = log_proposal(config, rows.items, head.n_items)
    for _ in range(config.behaviour_epochs):
        for idx in _batches(len(rows.items), config.batch_size, gen):
            loss = -log_prob(head, rows.states[idx], rows.items[idx], config, log_q, gen).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head


def value_estimates(pi: torch.Tensor, beta: torch.Tensor, rewards: torch.Tensor, cap: float) -> dict[str, float]:
    """Capped IPS (1/n) Σ min(π/β, c)·r and SNIPS Σ (π/β)·r / Σ π/β of π on logged rows, per event."""
    if not len(rewards):
        return {"capped_ips": float("nan"), "snips": float("nan")}
    ratio = pi / beta.clamp_min(1e-12)
    snips = float((ratio * rewards).sum() / ratio.sum()) if float(ratio.sum()) > 0 else float("nan")
    return {"capped_ips": float((ratio.clamp_max(cap) * rewards).mean()), "snips": snips}


def train_seq_reinforce(rows: LoggedRows, item_table: torch.Tensor, config: SeqReinforceConfig,
                        log: Log | None = None) -> SeqReinforcePolicy:
    """Fit β where propensities are missing, then π by the corrected REINFORCE gradient; the latest
    ``validation`` share of the rows is held out for the report."""
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    n = len(rows.items)
    n_val = round(n * config.validation)
    train, val = rows.take(torch.arange(n - n_val)), rows.take(torch.arange(n - n_val, n))
    missing = torch.isnan(rows.propensity)
    behaviour = None
    beta = rows.propensity.clone()
    if bool(missing.any()):
        behaviour = fit_behaviour(train, item_table, config, gen)
        beta[missing] = full_probs_of(behaviour, rows.states[missing], rows.items[missing])
    beta_train, beta_val = beta[: n - n_val], beta[n - n_val:]
    policy = SoftmaxHead(item_table, warm_start=config.warm_start)
    opt = torch.optim.Adam(policy.parameters(), lr=config.lr)
    log_q = log_proposal(config, train.items, policy.n_items)
    rewarded = torch.nonzero(train.rewards != 0)[:, 0]
    losses: list[float] = []
    capped = 0
    for epoch in range(config.epochs):
        total, capped = 0.0, 0
        for part in _batches(len(rewarded), config.batch_size, gen):
            idx = rewarded[part]
            logp = log_prob(policy, train.states[idx], train.items[idx], config, log_q, gen)
            weight = torch.ones_like(logp)
            if config.correction:
                weight, hit = topk_weights(logp.detach().exp(), beta_train[idx], config.top_k, config.cap)
                capped += int(hit.sum())
            loss = -(weight * train.rewards[idx] * logp).sum() / max(1, len(rewarded))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total)
        if log is not None:
            log(f"epoch {epoch + 1}/{config.epochs}: loss {total:.5f}, capped {capped}")
    pi_val = full_probs_of(policy, val.states, val.items)
    report: dict[str, object] = {
        "rows": n, "rows_train": n - n_val, "rows_validation": n_val, "rewarded_train": len(rewarded),
        "share_with_propensity": float((~missing).float().mean()) if n else 0.0,
        "behaviour_learned": behaviour is not None,
        "cap_hits_last_epoch": capped, "cap_hit_share": capped / max(1, len(rewarded)),
        "train_loss": losses, "validation": value_estimates(pi_val, beta_val, val.rewards, config.cap),
        "validation_logging_ctr": float(val.rewards.mean()) if n_val else float("nan"),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    return SeqReinforcePolicy(policy, behaviour, config, report)


def rows_from_arrays(states: np.ndarray, items: np.ndarray, rewards: np.ndarray,
                     propensity: np.ndarray | None) -> LoggedRows:
    """LoggedRows from numpy arrays (``propensity`` None: none logged)."""
    n = len(items)
    prop = np.full(n, np.nan) if propensity is None else np.asarray(propensity, dtype=np.float64)
    return LoggedRows(torch.as_tensor(np.asarray(states), dtype=torch.float32),
                      torch.as_tensor(np.asarray(items), dtype=torch.int64),
                      torch.as_tensor(np.asarray(rewards), dtype=torch.float32),
                      torch.as_tensor(prop, dtype=torch.float32))
