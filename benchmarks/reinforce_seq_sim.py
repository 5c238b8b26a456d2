"""Sequential top-K REINFORCE on SASRec's user state (``rankstack.bandits.reinforce_seq``) against the logging
policy, uncorrected REINFORCE and SASRec's own softmax, judged by the simulator's truth and by SNIPS.

World: the simulator world of ``--seed`` with ``--users`` users and ``--items`` items, slates of 5, no fatigue
(requests are independent). History: ``--history`` requests served uniformly at random; each user's clicks in
order are the sequences SASRec is fitted on (hidden 32, the last 30 items), and the frozen SASRec state of a
user's history is the policy's state s_u in every later request. Logging policy β: the simulator's ``softmax`` over
item popularity (``--temperature``), 5 distinct items in random order with exact per-slot propensities — it
prefers popular items whatever the user wants. Every learned policy sees the same training log of ``--train``
requests (a row per impression, β = its logged per-slot propensity; only clicked rows move π, every row fits the
learned β):

- ``sasrec softmax``: the untrained head, π ∝ exp(s_u·e_a) (SASRec's next-item scores; no use of the log);
- ``reinforce``: ``correction=False`` (plain REINFORCE on the log: imitates β·r);
- ``topk K=1`` / ``topk K=5``: the corrected weight min(π/β, c)·K(1 − π)^{K−1}, c = 10, logged β;
- ``topk K=5 learned β``: the same without the logged propensities (β head fitted by maximum likelihood);
- ``topk K=5 sampled``: logged β, sampled softmax with 50 uniform negatives per batch (logQ-corrected).

Each policy serves 5 items by the exploration ``Softmax(1, order="score")`` over its logits (exact per-slot
propensities). Truth: ``true_ctr`` = mean true P(click) of the impressions it serves on ``--deploy`` fresh
requests. SNIPS: ``rankstack.ope.estimators.SNIPS`` on a held-out β log of ``--holdout`` requests, per (item,
slot) impression, w = π_e(a, l | u) / β(a, l | u) (two-action form as in ``reinforce_k_sweep.py``).

Usage: OMP_NUM_THREADS=1 python benchmarks/reinforce_seq_sim.py --seeds 0 [--out benchmarks/results/x.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from reinforce_k_sweep import snips  # the same SNIPS over held-out impressions as the K sweep

from rankstack.bandits.exploration import Softmax
from rankstack.bandits.logging_policies import build_policy
from rankstack.bandits.reinforce_seq import SeqReinforceConfig, SeqReinforcePolicy, SoftmaxHead
from rankstack.bandits.reinforce_seq_train import rows_from_arrays, train_seq_reinforce
from rankstack.data.dataset import Dataset
from rankstack.data.idmap import IdMap
from rankstack.sequential.sasrec import SASRec, SASRecConfig
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.simulator_config import PolicyConfig, SimulatorConfig

SLATE = 5


def _log(sim: MarketplaceSimulator, policy: Any, n: int, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """n requests of ``policy``: users, items [n, 5], per-slot propensities, clicks, requests."""
    req = sim.draw_requests(n, rng)
    items, prop = policy.choose(req, np.ones(sim.world.n_items, dtype=bool), rng)
    p = sim.world.click_probability(req, items, np.broadcast_to(np.arange(SLATE), items.shape))
    return req.users, items, prop, (rng.random(p.shape) < p).astype(float), req


def fit_sasrec(users: np.ndarray, items: np.ndarray, clicks: np.ndarray, seed: int) -> tuple[SASRec, Dataset]:
    """SASRec on each user's clicked items in log order, and the dataset (its id maps)."""
    rows, slots = np.nonzero(clicks)
    frame = pl.DataFrame({"user_id": users[rows].astype(np.int64), "item_id": items[rows, slots].astype(np.int64),
                          "timestamp": np.arange(len(rows), dtype=np.int64)})
    config = SASRecConfig(max_len=30, hidden_dim=32, epochs=15, validation=False, seed=seed, lr=3e-3)
    data = Dataset.from_events(frame, name="sim-history")
    return SASRec(config).fit(data), data


class Served:
    """A policy head over the SASRec catalogue, serving by Softmax(1, order="score")."""

    def __init__(self, head: SoftmaxHead, to_sim: np.ndarray) -> None:
        self.head, self.to_sim = head, to_sim

    def logits(self, states: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.head(states).double().numpy()

    def slates(self, states: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """Simulator item ids [n, 5]."""
        logits = self.logits(states)
        pool = np.broadcast_to(np.arange(logits.shape[1]), logits.shape)
        return self.to_sim[Softmax(1.0, order="score").choose(pool, logits, SLATE, rng).items]

    def slot_prob(self, states: torch.Tensor, sim_items: np.ndarray, to_internal: np.ndarray,
                  chunk: int = 500) -> np.ndarray:
        """Exact per-slot π_e of logged simulator items [n, 5] (0 for items outside the catalogue)."""
        out = np.zeros(sim_items.shape)
        softmax = Softmax(1.0, order="score")
        for start in range(0, len(sim_items), chunk):
            part = slice(start, start + chunk)
            logits = self.logits(states[part])
            dist = softmax.action_dist(np.broadcast_to(np.arange(logits.shape[1]), logits.shape), logits, SLATE)
            internal = to_internal[sim_items[part]]
            got = dist[np.arange(len(logits))[:, None], np.maximum(internal, 0), np.arange(SLATE)[None, :]]
            out[part] = np.where(internal >= 0, got, 0.0)
        return out


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every policy of one world: truth and SNIPS."""
    t0 = time.perf_counter()
    sim = MarketplaceSimulator(SimulatorConfig(seed=seed, n_users=args.users, n_items=args.items,
                                               slate_size=SLATE, fatigue=1.0))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 61]))
    uniform = build_policy(PolicyConfig(kind="uniform"), sim.world, SLATE, rng)
    beta = build_policy(PolicyConfig(kind="softmax", score="popularity", temperature=args.temperature),
                        sim.world, SLATE, rng)
    h_users, h_items, _, h_clicks, _ = _log(sim, uniform, args.history, rng)
    sasrec, data = fit_sasrec(h_users, h_items, h_clicks, seed)
    sasrec_s = time.perf_counter() - t0
    to_internal, to_sim = lookup(data.item_map, args.items)
    user_rows = lookup(data.user_map, args.users)[0]
    states = sasrec.user_states([sasrec.histories_[u] if u >= 0 else np.zeros(0, np.int64) for u in user_rows])
    table = sasrec.item_vectors()

    users, items, prop, clicks, _ = _log(sim, beta, args.train, rng)
    internal = to_internal[items]
    keep = internal >= 0  # every logged impression of an item SASRec knows (β is fitted on all of them)
    row_users = np.broadcast_to(users[:, None], items.shape)[keep]
    train_rows = rows_from_arrays(states[row_users].numpy(), internal[keep], clicks[keep], prop[keep])
    no_beta = rows_from_arrays(train_rows.states.numpy(), internal[keep], clicks[keep], None)
    base = {"epochs": args.epochs, "lr": args.lr, "batch_size": 256, "validation": 0.0, "seed": seed}
    variants: dict[str, tuple[dict[str, Any], Any]] = {
        "reinforce": ({"correction": False}, train_rows),
        "topk K=1": ({"top_k": 1}, train_rows),
        "topk K=5": ({"top_k": 5}, train_rows),
        "topk K=5 learned β": ({"top_k": 5}, no_beta),
        "topk K=5 sampled": ({"top_k": 5, "negatives": 50}, train_rows),
    }
    policies: dict[str, Served] = {"sasrec softmax": Served(SoftmaxHead(table), to_sim)}
    train_s: dict[str, float] = {}
    for name, (extra, data) in variants.items():
        t1 = time.perf_counter()
        trained: SeqReinforcePolicy = train_seq_reinforce(data, table, SeqReinforceConfig.model_validate(
            base | extra))
        train_s[name] = round(time.perf_counter() - t1, 1)
        policies[name] = Served(trained.policy_, to_sim)
    ho_users, ho_items, ho_prop, ho_clicks, _ = _log(sim, beta, args.holdout, rng)
    out: dict[str, Any] = {"seed": seed, "history_clicks": int(h_clicks.sum()), "train_clicks": int(clicks[keep].sum()),
                           "train_impressions": int(keep.sum()), "catalogue": len(to_sim),
                           "sasrec_s": round(sasrec_s, 1), "train_s": train_s}
    d_users, d_items, _, _, d_req = _log(sim, beta, args.deploy, rng)
    out["logging"] = {"true_ctr": float(sim.world.click_probability(
        d_req, d_items, np.broadcast_to(np.arange(SLATE), d_items.shape)).mean()),
        "snips": float(ho_clicks.mean()), "ess": float(ho_clicks.size)}
    for name, policy in policies.items():
        shown = policy.slates(states[d_users], rng)
        true = float(sim.world.click_probability(d_req, shown, np.broadcast_to(np.arange(SLATE), shown.shape)).mean())
        est, ess = snips(policy.slot_prob(states[ho_users], ho_items, to_internal), ho_prop, ho_clicks)
        out[name] = {"true_ctr": true, "snips": est, "ess": ess, "snips_rel_error": abs(est - true) / true}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def lookup(id_map: IdMap, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(simulator id → internal id or −1 [n], internal id → simulator id) of integer external ids."""
    to_sim = np.asarray(id_map.to_external_list(np.arange(len(id_map))), dtype=np.int64)
    to_internal = np.full(n, -1, dtype=np.int64)
    to_internal[to_sim] = np.arange(len(to_sim))
    return to_internal, to_sim


def main() -> None:
    """Every seed; the table as JSON (mean over seeds per policy as well)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--history", type=int, default=100_000, help="Uniform requests SASRec is fitted on.")
    parser.add_argument("--train", type=int, default=50_000, help="Requests in β's training log.")
    parser.add_argument("--holdout", type=int, default=20_000, help="Requests in β's held-out log (SNIPS).")
    parser.add_argument("--deploy", type=int, default=20_000, help="Fresh requests per deployed policy (truth).")
    parser.add_argument("--temperature", type=float, default=0.5, help="β's softmax temperature on popularity.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--out", default="benchmarks/results/issue18-reinforce-seq.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    runs = [one_seed(int(s), args) for s in args.seeds.split(",")]
    names = [k for k in runs[0] if isinstance(runs[0][k], dict) and "true_ctr" in runs[0][k]]
    mean = {name: {key: float(np.mean([r[name][key] for r in runs])) for key in runs[0][name]} for name in names}
    report = {"args": vars(args), "runs": runs, "mean": mean, "wall_s": round(time.perf_counter() - t0, 1),
              "utc": datetime.now(UTC).isoformat(timespec="seconds"), "load": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for name, row in mean.items():
        print(f"{name:22s} true CTR {row['true_ctr']:.5f}  SNIPS {row['snips']:.5f}  ESS {row['ess']:.0f}")
    print(f"wall {report['wall_s']} s, load {report['load']}")


if __name__ == "__main__":
    main()
