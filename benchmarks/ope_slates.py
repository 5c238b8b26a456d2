"""Slate off-policy estimators on the marketplace simulator: slates of K from m items, known true values.

World: ``MarketplaceSimulator`` (fatigue off, so a slot's click chance depends on the request, the item and the
slot only). Logging policy: ``bandits.Uniform`` (K distinct items of m in random order, logged per-slot propensity
1/m). Evaluated policy: ``bandits.EpsilonGreedy(ε)`` over a noisy copy of the true attraction logits (the logging
model of ``bandits.logging_policies`` with ``--score-noise``), fixed across replicates. Two reward worlds:

- ``additive``: every slot's click is drawn independently, P(click) = exam(slot) · σ(attraction); the slate reward
  is the number of clicks. True value exact: E_x Σ_k [ε · mean_a p(x, a, k) + (1 − ε) p(x, g_k, k)] over
  ``--truth-requests`` requests.
- ``cascade``: the user reads top-down and stops at the first click, r_k = c_k Π_{j<k} (1 − c_j): not additive
  over slots (the honest row for PI and independent IPS). True value: (1 − ε)·V(greedy slate) exactly plus
  ε·E_uniform V(slate) by Monte Carlo (``--truth-slates`` uniform slates per request; its standard error is
  recorded).

Each replicate draws ``--rounds`` new requests and a new log; every estimator runs on it (bootstrap intervals with
``--boot`` resamples); relative MSE = mean over replicates of (V̂ − V)² / V². Cascade-DR's reward model is
fitted on each replicate's own log: per slot, a logistic calibration σ(α_k + β_k ŝ) of the evaluated policy's
scores ŝ to the logged rewards; Q̂_k is its expectation under π of the rewards of slots k..K given the prefix. "DM"
is that reward model alone (E_π Q̂_1), for reference.

Writes benchmarks/results/ope_slates[-TAG].json and docs/figures/ope-slates[-TAG].png.

Usage: python benchmarks/ope_slates.py [--items 1000] [--slots 5] [--rounds 10000] [--replicates 50]
       python benchmarks/ope_slates.py --sweep 100,1000,10000 --worlds additive --tag sweep
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import expit

from rankstack.bandits import EpsilonGreedy, Uniform
from rankstack.bandits.exploration import top_positions
from rankstack.bandits.logging_policies import LoggingScores
from rankstack.ope.slate_estimators import NAMES, evaluate_slates
from rankstack.ope.slate_inputs import SlateLog, SlateTarget, slate_target
from rankstack.ope.slate_policies import epsilon_greedy_cascade, epsilon_greedy_conditional, uniform_cascade
from rankstack.plotting import save_figure
from rankstack.progress import new_progress
from rankstack.provenance import code_version, machine_info
from rankstack.simulation import MarketplaceSimulator, PolicyConfig, Requests, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
CHUNK_CELLS = 4_000_000  # rounds × items per chunk: keeps each [chunk, m, K] array near 160 MB at most


@dataclass(frozen=True)
class Setting:
    """The simulated world and the evaluated policy's scores."""

    sim: MarketplaceSimulator
    scores: LoggingScores
    slots: int
    epsilon: float

    @property
    def m(self) -> int:
        """Catalogue size."""
        return self.sim.world.n_items


def make_setting(items: int, args: argparse.Namespace) -> Setting:
    """The world (``--seed``) and the evaluated policy's noisy scores (drawn once from ``--seed`` + 1)."""
    config = SimulatorConfig(n_items=items, n_users=args.users, slate_size=args.slots, fatigue=1.0, seed=args.seed)
    sim = MarketplaceSimulator(config)
    policy = PolicyConfig(kind="epsilon_greedy", score="affinity", score_noise=args.score_noise)
    return Setting(sim, LoggingScores(sim.world, policy, np.random.default_rng(args.seed + 1)), args.slots,
                   args.epsilon)


def chunks(n: int, m: int) -> list[slice]:
    """Round slices whose [rounds, m] blocks stay under ``CHUNK_CELLS``."""
    step = max(1, CHUNK_CELLS // (m * 5))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def click_all(s: Setting, req: Requests) -> np.ndarray:
    """True P(click) of every item at every slot [n, m, K] (no fatigue)."""
    attraction = expit(s.sim.world.attraction_logit_all(req))
    exam = s.sim.world.examination(np.broadcast_to(np.arange(s.slots), (len(req), s.slots)), req.placement)
    return attraction[:, :, None] * exam[:, None, :]


def cascade_value(p: np.ndarray) -> np.ndarray:
    """Expected reward of slates whose slot click chances are ``p`` [..., K] under the stop-at-first-click cascade."""
    survive = np.cumprod(1.0 - p, axis=-1)
    before = np.concatenate([np.ones((*p.shape[:-1], 1)), survive[..., :-1]], axis=-1)
    return (p * before).sum(axis=-1)


def true_value(s: Setting, world: str, args: argparse.Namespace) -> dict[str, float]:
    """V(π) over ``--truth-requests`` requests (and its Monte Carlo standard error in the cascade world)."""
    rng = np.random.default_rng(args.seed + 2)
    req = s.sim.draw_requests(args.truth_requests, rng)
    per_request, noise = [], []
    for part in chunks(len(req), s.m):
        sub = req.take(part)
        p = click_all(s, sub)
        greedy = top_positions(s.scores(sub), np.ones((len(sub), s.m), dtype=bool), s.slots)
        at_greedy = np.take_along_axis(p, greedy[:, None, :], axis=1)[:, 0, :]
        if world == "additive":
            per_request.append(s.epsilon * p.mean(axis=1).sum(axis=1) + (1 - s.epsilon) * at_greedy.sum(axis=1))
            continue
        pool = np.broadcast_to(np.arange(s.m), (len(sub), s.m))
        draws = np.stack([Uniform().choose(pool, np.zeros(pool.shape), s.slots, rng).positions
                          for _ in range(args.truth_slates)], axis=1)  # [n, S, K]
        slot_p = p[np.arange(len(sub))[:, None, None], draws, np.arange(s.slots)[None, None, :]]
        uniform = cascade_value(slot_p)  # [n, S]
        per_request.append(s.epsilon * uniform.mean(axis=1) + (1 - s.epsilon) * cascade_value(at_greedy))
        noise.append(s.epsilon * uniform.var(axis=1, ddof=1) / args.truth_slates)
    values = np.concatenate(per_request)
    out = {"value": float(values.mean()), "se_requests": float(values.std(ddof=1) / np.sqrt(len(values)))}
    if noise:
        out["se_slates"] = float(np.sqrt(np.concatenate(noise).sum()) / len(values))
    return out


def fit_calibration(score: np.ndarray, label: np.ndarray, steps: int = 25) -> np.ndarray:
    """(α, β) of the logistic regression label ~ σ(α + β·score) by Newton's method (a tiny ridge keeps it stable)."""
    x = np.stack([np.ones_like(score), score], axis=1)
    theta = np.zeros(2)
    for _ in range(steps):
        p = expit(x @ theta)
        grad = x.T @ (label - p) - 1e-6 * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        theta = theta + np.linalg.solve(hess, grad)
    return theta


def reward_model(r_hat: np.ndarray, positions: np.ndarray, greedy: np.ndarray, epsilon: float) -> np.ndarray:
    """Q̂_k(x, logged a_1..a_{k−1}, a) [n, m, K]: r̂_k(a) plus the expected r̂ of slots k+1..K under ε-greedy given
    the prefix with a at slot k (the greedy slate with the posterior chance ρ, else uniform over unused items)."""
    n, m, k = r_hat.shape
    rows = np.arange(n)
    out = r_hat.copy()
    later_sum = np.cumsum(r_hat[:, :, ::-1], axis=2)[:, :, ::-1] - r_hat  # Σ_{l>k} r̂_l(a) [n, m, K]
    total = r_hat.sum(axis=1)  # Σ_a r̂_l(a) [n, K]
    at_greedy = np.take_along_axis(r_hat, greedy[:, None, :], axis=1)[:, 0, :]  # r̂_l(g_l) [n, K]
    used = np.zeros((n, k))  # Σ over the logged prefix of r̂_l at its items, for every slot l
    match = np.ones(n, dtype=bool)  # the logged prefix so far is the greedy one
    for slot in range(k - 1):
        greedy_prior = (1 - epsilon) * (match[:, None] & (np.arange(m)[None, :] == greedy[:, slot][:, None]))
        rho = greedy_prior / (greedy_prior + epsilon * np.prod(1.0 / (m - np.arange(slot + 1))))  # [n, m]
        free = (total - used)[:, slot + 1:].sum(axis=1)[:, None] - later_sum[:, :, slot]  # Σ_{l>k} Σ_{b unused}
        greedy_future = at_greedy[:, slot + 1:].sum(axis=1)[:, None]
        out[:, :, slot] += rho * greedy_future + (1 - rho) * free / (m - slot - 1)
        used += r_hat[rows, positions[:, slot], :]
        match &= positions[:, slot] == greedy[:, slot]
    return out


def replicate(s: Setting, worlds: list[str], args: argparse.Namespace, seed: int
              ) -> dict[str, dict[str, dict[str, float]]]:
    """One log of ``--rounds`` requests under the uniform logger, its clicks read in each world (the same draws:
    the cascade world keeps the clicks up to the first); every estimator's estimate and interval, per world."""
    rng = np.random.default_rng([args.seed, seed])
    req = s.sim.draw_requests(args.rounds, rng)
    n, m, k = args.rounds, s.m, s.slots
    pool = np.broadcast_to(np.arange(m), (n, m))
    positions = Uniform().choose(pool, np.broadcast_to(0.0, (n, m)), k, rng).positions
    p = s.sim.world.click_probability(req, positions, np.broadcast_to(np.arange(k), (n, k)))
    clicks = (rng.random((n, k)) < p).astype(np.float64)
    first_only = clicks * np.concatenate([np.ones((n, 1)), np.cumprod(1 - clicks, axis=1)[:, :-1]], axis=1)
    logs = {world: SlateLog(rewards=clicks if world == "additive" else first_only, positions=positions,
                            pscore=np.full((n, k), 1.0 / m), pscore_cascade=uniform_cascade(m, k, n))
            for world in worlds}
    parts = chunks(n, m)
    score_parts = [s.scores(req.take(part)) for part in parts]
    logged_scores = np.concatenate([np.take_along_axis(sc, positions[part], axis=1)
                                    for sc, part in zip(score_parts, parts, strict=True)])
    thetas = {world: [fit_calibration(logged_scores[:, slot], log.rewards[:, slot]) for slot in range(k)]
              for world, log in logs.items()}
    targets: dict[str, list[SlateTarget]] = {world: [] for world in worlds}
    for scores, part in zip(score_parts, parts, strict=True):
        rows = len(scores)
        greedy = top_positions(scores, np.ones((rows, m), dtype=bool), k)
        dist = EpsilonGreedy(s.epsilon).action_dist(np.broadcast_to(np.arange(m), (rows, m)), scores, k)
        cascade = epsilon_greedy_cascade(positions[part], greedy, s.epsilon, m)
        conditional = epsilon_greedy_conditional(positions[part], greedy, s.epsilon, m)
        for world, log in logs.items():
            sub = SlateLog(rewards=log.rewards[part], positions=positions[part], pscore=log.pscore[part],
                           pscore_cascade=log.cascade("benchmark")[part])
            r_hat = np.stack([expit(t[0] + t[1] * scores) for t in thetas[world]], axis=2)
            targets[world].append(slate_target(sub, action_dist=dist, cascade=cascade, conditional_dist=conditional,
                                               reward_model=reward_model(r_hat, positions[part], greedy, s.epsilon)))
    out = {}
    for world, log in logs.items():
        target = SlateTarget.concat(targets[world])
        found = evaluate_slates(log, target, n_boot=args.boot, seed=seed)
        out[world] = {name: {"value": e.value, "lower": e.lower, "upper": e.upper, "max_weight": e.max_weight,
                             "ess": e.ess} for name, e in found.items()}
        out[world]["DM"] = {"value": float(target.need("q_baseline", "DM")[:, 0].mean()), "lower": float("nan"),
                            "upper": float("nan"), "max_weight": float("nan"), "ess": float("nan")}
    return out


def summarise(runs: list[dict[str, dict[str, float]]], truth: float) -> dict[str, dict[str, float]]:
    """Relative MSE, relative bias, relative std and interval coverage per estimator over the replicates."""
    out = {}
    for name in runs[0]:
        v = np.array([r[name]["value"] for r in runs])
        lo = np.array([r[name]["lower"] for r in runs])
        hi = np.array([r[name]["upper"] for r in runs])
        out[name] = {
            "relative_mse": float(np.mean((v - truth) ** 2) / truth**2),
            "relative_bias": float((v.mean() - truth) / truth),
            "relative_std": float(v.std(ddof=1) / truth) if len(v) > 1 else float("nan"),
            "coverage": float(np.mean((lo <= truth) & (truth <= hi))) if np.isfinite(lo).all() else float("nan"),
            "mean_estimate": float(v.mean()),
            "median_ess": float(np.median([r[name]["ess"] for r in runs])),
        }
    return out


def plot(record: dict[str, Any], path: Path) -> None:
    """Relative MSE per estimator (log scale), one group of bars per world / catalogue size."""
    groups = list(record["results"])
    names = [*NAMES, "DM"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        mse = [record["results"][group]["estimators"][n]["relative_mse"] for n in names]
        ax.bar(np.arange(len(names)) + g * width - 0.4 + width / 2, mse, width, label=group)
    ax.set_xticks(np.arange(len(names)), names, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("relative MSE  (V̂ − V)² / V²")
    rounds = record["args"].get("rounds")
    ax.set_title(f"slates of {record['args']['slots']}" + (f", {rounds:,} rounds" if rounds else "")
                 + f", uniform logger, ε-greedy (ε = {record['args']['epsilon']}) evaluated")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def markdown(record: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per world and estimator."""
    lines = ["| world | estimator | relative MSE | relative bias | relative std | 95% CI coverage | median ESS |",
             "|---|---|---|---|---|---|---|"]
    for group, result in record["results"].items():
        for name, e in result["estimators"].items():
            lines.append(f"| {group} | {name} | {e['relative_mse']:.4g} | {e['relative_bias']:+.3f} | "
                         f"{e['relative_std']:.3f} | {e['coverage']:.2f} | {e['median_ess']:,.0f} |")
    return "\n".join(lines)


def combine(paths: list[Path], out: Path, worlds: list[str]) -> None:
    """One plot of several result files' ``worlds``, each group labelled with its world, catalogue and rounds
    (ordered by world, then catalogue size, then rounds)."""
    records = [json.loads(p.read_text()) for p in paths]
    found = [(group.split(",")[0], int(group.split("m=")[1]), r["args"]["rounds"], result)
             for r in records for group, result in r["results"].items() if group.split(",")[0] in worlds]
    results = {f"{world}, m={m:,}, n={n:,}": result
               for world, m, n, result in sorted(found, key=lambda g: (worlds.index(g[0]), g[1], g[2]))}
    args = {**records[0]["args"], "rounds": None}
    plot({"args": args, "results": results}, out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--sweep", default=None, help="comma-separated catalogue sizes instead of --items")
    parser.add_argument("--worlds", default="additive,cascade")
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--replicates", type=int, default=50)
    parser.add_argument("--epsilon", type=float, default=0.3)
    parser.add_argument("--score-noise", type=float, default=0.5)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--truth-requests", type=int, default=50_000)
    parser.add_argument("--truth-slates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="only plot these result files together (groups named by world and rounds) to --tag")
    args = parser.parse_args()
    if args.combine:
        combine([Path(p) for p in args.combine], ROOT / "docs" / "figures" / f"ope-slates-{args.tag or 'combined'}.png",
                args.worlds.split(","))
        return
    sizes = [int(v) for v in args.sweep.split(",")] if args.sweep else [args.items]
    started = time.time()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for items in sizes:
        setting = make_setting(items, args)
        worlds = args.worlds.split(",")
        t0 = time.time()
        truths = {world: true_value(setting, world, args) for world in worlds}
        print(f"m={items}: true values in {time.time() - t0:.0f} s", flush=True)
        runs = []
        with new_progress() as progress:  # advance() itself: rankstack.progress.track prints no plain lines
            task = progress.add_task(f"replicates, m={items}", total=args.replicates)
            for seed in range(args.replicates):
                runs.append(replicate(setting, worlds, args, seed))
                progress.advance(task)
        for world in worlds:
            key = f"{world}, m={items}"
            results[key] = {"truth": truths[world], "estimators": summarise([r[world] for r in runs],
                                                                            truths[world]["value"])}
            print(key, "truth", truths[world], flush=True)
        results[f"{worlds[0]}, m={items}"]["wall_s_all_worlds"] = round(time.time() - t0, 1)
    suffix = f"-{args.tag}" if args.tag else ""
    record = {
        "benchmark": "ope_slates", "args": vars(args), "results": results,
        "wall_s": round(time.time() - started, 1), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info(), "code": code_version(),
    }
    out = ROOT / "benchmarks" / "results" / f"ope_slates{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    plot(record, ROOT / "docs" / "figures" / f"ope-slates{suffix}.png")
    print(markdown(record))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
