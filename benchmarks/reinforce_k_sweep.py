"""Top-K off-policy-corrected REINFORCE against the logging policy, uncorrected REINFORCE and a supervised
ranker, for K = 1, 2, 8, 16 (Chen et al., WSDM 2019, Sec. 6), judged by the simulator's truth and by SNIPS.

World: the default simulator world of ``--seed`` (10,000 users, 500 items, slates of 5), clicks without
fatigue (each request is independent, so a log's value does not depend on its order). Logging policy β: the
simulator's ``softmax`` over item popularity (``score: popularity``, ``--temperature``), K distinct items in
random order with exact per-slot propensities — it prefers popular items whatever the user wants, the paper's
biased behaviour policy. Every learned policy sees the same training log of ``--train`` requests:

- ``reinforce`` (uncorrected): ``ReinforceTopK(correction=False)`` on the clicked impressions;
- ``topk K=…``: ``ReinforceTopK(top_k=K)`` with the logged β (weights min(π/β, c)·K(1 − π)^{K−1}, c = 10);
- ``supervised``: a pointwise click model P(click | x, a) = σ(xᵀW y_a) (the same bilinear form), fitted by
  L-BFGS on every logged impression (ridge 1), serving its top 5 greedily (per-slot propensity 1).

The REINFORCE policies serve 5 items by ``Softmax(1, order="score")`` over their logits (exact per-slot
propensities). Truth: each policy is deployed on ``--deploy`` fresh requests; ``true_ctr`` = mean true
P(click) of its impressions, ``realised_ctr`` = the share clicked (clicks drawn once). SNIPS: on a held-out log
of ``--holdout`` fresh requests of β, per (item, slot) impression, w = π_e(a_i, l_i | x_i) / β(a_i, l_i | x_i);
the estimator is ``rankstack.ope.estimators.SNIPS`` on an ``OffPolicyData`` whose action axis is {the logged
item, any other item} (π_e(a_i, l_i) and 1 − π_e(a_i, l_i)): SNIPS reads only the logged action's
probability, so this is the same estimate as over the 500 items, without a [rounds, 500, 5] array.

Usage: OMP_NUM_THREADS=1 python benchmarks/reinforce_k_sweep.py --seeds 0,1,2 [--out benchmarks/results/x.json]
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
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from rankstack.bandits.exploration import Softmax
from rankstack.bandits.learning import BanditContext
from rankstack.bandits.logging_policies import build_policy
from rankstack.bandits.policy_comparison import make_stream, round_features
from rankstack.bandits.reinforce_topk import ReinforceTopK
from rankstack.ope.estimators import SNIPS
from rankstack.ope.feedback import OffPolicyData
from rankstack.simulation.simulator_config import PolicyConfig
from rankstack.simulation.world import Requests

K_VALUES = (1, 2, 8, 16)
SLATE = 5


def fit_click_model(x: np.ndarray, arms: np.ndarray, items: np.ndarray, clicks: np.ndarray,
                    ridge: float = 1.0) -> np.ndarray:
    """W of P(click) = σ(xᵀW y_a) by L-BFGS on the mean log-loss + ridge/(2n)·‖W‖²."""
    y = arms[items]
    n, shape = len(x), (x.shape[1], arms.shape[1])

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(shape)
        z = np.einsum("nd,de,ne->n", x, w, y)
        nll = -(clicks * log_expit(z) + (1 - clicks) * log_expit(-z)).sum() + 0.5 * ridge * (w * w).sum()
        grad = x.T @ ((expit(z) - clicks)[:, None] * y) + ridge * w
        return nll / n, grad.ravel() / n

    return minimize(loss, np.zeros(shape[0] * shape[1]), jac=True, method="L-BFGS-B").x.reshape(shape)


class Greedy:
    """The supervised ranker: top 5 of xᵀW y_a, per-slot propensity 1."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w

    def logits(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        return (x @ self.w) @ arms.T

    def slates(self, x: np.ndarray, arms: np.ndarray, rng: np.random.Generator, req: Requests | None = None
               ) -> np.ndarray:
        return np.argsort(-self.logits(x, arms), axis=1, kind="stable")[:, :SLATE]

    def slot_prob(self, x: np.ndarray, arms: np.ndarray, items: np.ndarray) -> np.ndarray:
        """π_e(item at its slot) for logged items [n, 5]."""
        return (self.slates(x, arms, np.random.default_rng(0)) == items).astype(float)


class Sampled:
    """A REINFORCE policy served by Softmax(1, order="score") over its logits."""

    def __init__(self, policy: ReinforceTopK) -> None:
        self.policy = policy

    def slates(self, x: np.ndarray, arms: np.ndarray, rng: np.random.Generator, req: Requests | None = None
               ) -> np.ndarray:
        pool = np.broadcast_to(np.arange(len(arms)), (len(x), len(arms)))
        return self.policy.choose(pool, np.zeros(pool.shape), SLATE, rng, context=BanditContext(x, arms)).items

    def slot_prob(self, x: np.ndarray, arms: np.ndarray, items: np.ndarray, chunk: int = 500) -> np.ndarray:
        """Exact per-slot π_e of the logged items [n, 5], from ``Softmax.action_dist`` in chunks."""
        out = np.empty(items.shape)
        softmax = Softmax(1.0, order="score")
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            logits = self.policy.model.logits(x[part], arms)
            pool = np.broadcast_to(np.arange(len(arms)), logits.shape)
            dist = softmax.action_dist(pool, logits, SLATE)  # [n, items, slots]
            rows = np.arange(len(logits))[:, None]
            out[part] = dist[rows, items[part], np.arange(SLATE)[None, :]]
        return out


def _log(sim: Any, beta: Any, n: int, rng: np.random.Generator) -> tuple[Requests, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """n requests of β: requests, items [n, 5], per-slot propensities, clicks (truth, no fatigue)."""
    req = sim.draw_requests(n, rng)
    items, prop = beta.choose(req, np.ones(sim.world.n_items, dtype=bool), rng)
    p = sim.world.click_probability(req, items, np.broadcast_to(np.arange(SLATE), items.shape))
    return req, items, prop, (rng.random(p.shape) < p).astype(float)


def _deploy(sim: Any, policy: Any, arms: np.ndarray, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """(true CTR, realised CTR) of ``policy`` on n fresh requests."""
    req = sim.draw_requests(n, rng)
    items = policy.slates(round_features(sim, req), arms, rng, req)
    p = sim.world.click_probability(req, items, np.broadcast_to(np.arange(SLATE), items.shape))
    return float(p.mean()), float((rng.random(p.shape) < p).mean())


def snips(pi_e: np.ndarray, beta: np.ndarray, clicks: np.ndarray) -> tuple[float, float]:
    """SNIPS over the held-out impressions (the two-action form above) and the weights' effective sample size."""
    n = pi_e.size
    pi = np.clip(pi_e.ravel(), 0.0, 1.0)
    data = OffPolicyData(reward=clicks.ravel(), action=np.zeros(n, dtype=np.int64),
                         position=np.zeros(n, dtype=np.int64), pscore=beta.ravel(),
                         action_dist=np.stack([pi, 1 - pi], axis=1)[:, :, None])
    w = data.weights()
    return SNIPS().estimate(data), float(w.sum() ** 2 / max((w * w).sum(), 1e-300))


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every policy of one world: truth and SNIPS."""
    stream = make_stream(1, seed)
    sim, arms = stream.sim, stream.context.arms
    rng = np.random.default_rng(np.random.SeedSequence([seed, 31]))
    beta = build_policy(PolicyConfig(kind="softmax", score="popularity", temperature=args.temperature),
                        sim.world, SLATE, rng)
    req, items, prop, clicks = _log(sim, beta, args.train, rng)
    x = round_features(sim, req)
    rows, slots = np.nonzero(clicks)
    policies: dict[str, Any] = {}
    t0 = time.perf_counter()
    policies["supervised"] = Greedy(fit_click_model(np.repeat(x, SLATE, axis=0), arms, items.ravel(),
                                                    clicks.ravel()))
    policies["reinforce"] = Sampled(ReinforceTopK(x.shape[1], arms.shape[1], correction=False, seed=seed).fit(
        x[rows], arms, items[rows, slots], np.ones(len(rows)), prop[rows, slots]))
    for k in args.k:
        policies[f"topk K={k}"] = Sampled(ReinforceTopK(x.shape[1], arms.shape[1], top_k=k, seed=seed).fit(
            x[rows], arms, items[rows, slots], np.ones(len(rows)), prop[rows, slots]))
    train_s = time.perf_counter() - t0
    h_req, h_items, h_prop, h_clicks = _log(sim, beta, args.holdout, rng)
    h_x = round_features(sim, h_req)
    out: dict[str, Any] = {"seed": seed, "train_clicks": len(rows), "train_s": round(train_s, 1)}
    true, realised = _deploy(sim, _LoggingDeploy(beta, sim), arms, args.deploy, rng)
    out["logging"] = {"true_ctr": true, "realised_ctr": realised, "snips": float(h_clicks.mean()),
                      "ess": float(h_clicks.size)}
    for name, policy in policies.items():
        true, realised = _deploy(sim, policy, arms, args.deploy, rng)
        est, ess = snips(policy.slot_prob(h_x, arms, h_items), h_prop, h_clicks)
        out[name] = {"true_ctr": true, "realised_ctr": realised, "snips": est, "ess": ess,
                     "snips_rel_error": abs(est - true) / true}
    return out


class _LoggingDeploy:
    """β itself on fresh requests (its SNIPS is the held-out log's mean reward: every weight is 1)."""

    def __init__(self, beta: Any, sim: Any) -> None:
        self.beta, self.sim = beta, sim

    def slates(self, x: np.ndarray, arms: np.ndarray, rng: np.random.Generator, req: Requests | None = None
               ) -> np.ndarray:
        assert req is not None
        return self.beta.choose(req, np.ones(self.sim.world.n_items, dtype=bool), rng)[0]


def main() -> None:
    """Every seed; the table as JSON (mean over seeds per policy as well)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train", type=int, default=50_000, help="Requests in the training log.")
    parser.add_argument("--holdout", type=int, default=20_000, help="Requests in the held-out log (SNIPS).")
    parser.add_argument("--deploy", type=int, default=20_000, help="Fresh requests per deployed policy (truth).")
    parser.add_argument("--temperature", type=float, default=0.5, help="β's softmax temperature on popularity.")
    parser.add_argument("--k", type=lambda s: [int(v) for v in s.split(",")], default=list(K_VALUES))
    parser.add_argument("--out", default="benchmarks/results/issue18-reinforce-k-sweep.json")
    args = parser.parse_args()
    t0 = time.perf_counter()
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        runs.append(one_seed(seed, args))
        print(json.dumps(runs[-1]), flush=True)
    names = [k for k in runs[0] if isinstance(runs[0][k], dict)]
    mean = {name: {m: float(np.mean([r[name][m] for r in runs])) for m in runs[0][name]} for name in names}
    report = {"runs": runs, "mean": mean, "args": vars(args), "wall_s": round(time.perf_counter() - t0, 1),
              "loadavg": os.getloadavg()[0], "ended": datetime.now(UTC).isoformat(timespec="seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps({"mean": mean, "wall_s": report["wall_s"]}))


if __name__ == "__main__":
    main()
