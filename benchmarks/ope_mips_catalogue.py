"""MIPS against IPS as the catalogue grows (100 → 10,000 items) on the marketplace simulator, one slot.

World: ``SimulatorConfig(n_items=N, n_users=2000, fatigue=1.0, seed=0)``; the reward is a click in slot 0 with the
world's true probability. Logger π_0: softmax over the simulator's noisy logging scores (``LoggingScores``, score
noise 0.5) at temperature 1. Evaluated π_e: ε-greedy (ε = 0.2) on less noisy scores (noise 0.2). Embedding: the
item's category (12 of them; ``--groups G``: G k-means clusters of the observable item features) —
the click does depend on the item beyond its category, so MIPS is biased here; the
question is how its variance and bias trade against IPS's as the catalogue grows. Truth: E_x Σ_a π_e(a|x) p(x, a)
on 20,000 fresh requests (exact per request). Estimates: IPS 1/n Σ w r and MIPS 1/n Σ w^e r, w^e = P(e_i|π_e)/P(e_i|π_0)
(``rankstack.ope.estimators``; up to 1,000 items the script checks its closed forms against those classes on the full
[rounds, actions, 1] arrays of one chunk; at 10,000 items it uses the closed forms only).

    python benchmarks/ope_mips_catalogue.py [--items 100 1000 10000] [--rounds 10000] [--reps 20] [--groups 0]
Writes benchmarks/results/ope_mips_catalogue.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.bandits.logging_policies import LoggingScores
from rankstack.ope.estimators import IPS, MIPS, SNIPS, SNMIPS
from rankstack.ope.feedback import OffPolicyData
from rankstack.provenance import code_version, machine_info
from rankstack.simulation import MarketplaceSimulator, PolicyConfig, SimulatorConfig

EPSILON, CHUNK = 0.2, 1000


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class World:
    """The simulator world of ``n_items`` items with the logger's and the target's scores."""

    def __init__(self, n_items: int, seed: int = 0, groups: int = 0) -> None:
        self.sim = MarketplaceSimulator(SimulatorConfig(n_users=2000, n_items=n_items, fatigue=1.0, seed=seed))
        rng = np.random.default_rng(seed + 1)
        self.logger = LoggingScores(self.sim.world, PolicyConfig(score_noise=0.5), rng)
        self.target = LoggingScores(self.sim.world, PolicyConfig(score_noise=0.2), rng)
        self.category = self.sim.world.item_category
        if groups:  # k-means clusters of the items' observable features instead of their category
            from sklearn.cluster import KMeans

            feats = self.sim.world.item_features
            self.category = KMeans(n_clusters=min(groups, n_items), n_init=3, random_state=seed).fit_predict(feats)

    def chunk(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true click probabilities, π_0, π_e), each [n, items], for ``n`` fresh requests in slot 0."""
        req = self.sim.draw_requests(n, rng)
        items = np.broadcast_to(np.arange(self.sim.world.n_items), (n, self.sim.world.n_items))
        p = self.sim.world.click_probability(req, items, np.zeros(items.shape, np.int64))
        pi0 = softmax(self.logger(req))
        greedy = np.argmax(self.target(req), axis=1)
        pie = np.full(p.shape, EPSILON / p.shape[1])
        pie[np.arange(n), greedy] += 1.0 - EPSILON
        return p, pi0, pie

    def truth(self, n: int, seed: int) -> float:
        """E_x Σ_a π_e(a|x) p(x, a) on ``n`` fresh requests."""
        rng = np.random.default_rng(seed)
        total = 0.0
        for start in range(0, n, CHUNK):
            p, _, pie = self.chunk(min(CHUNK, n - start), rng)
            total += float((p * pie).sum())
        return total / n


def group_mass(dist: np.ndarray, groups: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Σ_{a: e(a) = e(chosen_i)} dist[i, a] per row."""
    n_groups = int(groups.max()) + 1
    per_group = np.zeros((len(dist), n_groups))
    np.add.at(per_group, (np.arange(len(dist))[:, None], np.broadcast_to(groups, dist.shape)), dist)
    return per_group[np.arange(len(dist)), groups[chosen]]


def one_log(world: World, rounds: int, seed: int, check: bool) -> dict[str, float]:
    """IPS, SNIPS, MIPS and SN-MIPS on one log of ``rounds`` requests."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"r": [], "w": [], "we": []}
    for start in range(0, rounds, CHUNK):
        n = min(CHUNK, rounds - start)
        p, pi0, pie = world.chunk(n, rng)
        cum = np.cumsum(pi0, axis=1)
        action = np.minimum((cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1), pi0.shape[1] - 1)
        rows = np.arange(n)
        reward = (rng.random(n) < p[rows, action]).astype(np.float64)
        w = pie[rows, action] / pi0[rows, action]
        we = group_mass(pie, world.category, action) / group_mass(pi0, world.category, action)
        if check and start == 0:
            data = OffPolicyData(reward=reward, action=action, position=np.zeros(n, np.int64),
                                 pscore=pi0[rows, action], action_dist=pie[:, :, None],
                                 behavior_dist=pi0[:, :, None], action_embedding=world.category)
            assert np.isclose(IPS().estimate(data), np.mean(w * reward))
            assert np.isclose(MIPS().estimate(data), np.mean(we * reward))
            assert np.isclose(SNIPS().estimate(data), np.sum(w * reward) / np.sum(w))
            assert np.isclose(SNMIPS().estimate(data), np.sum(we * reward) / np.sum(we))
        parts["r"].append(reward)
        parts["w"].append(w)
        parts["we"].append(we)
    r, w, we = (np.concatenate(parts[k]) for k in ("r", "w", "we"))
    return {"ips": float(np.mean(w * r)), "snips": float(np.sum(w * r) / np.sum(w)),
            "mips": float(np.mean(we * r)), "snmips": float(np.sum(we * r) / np.sum(we)),
            "max_weight": float(w.max()), "max_embedding_weight": float(we.max()),
            "ess_share": float(w.sum() ** 2 / np.sum(w**2) / len(w)),
            "embedding_ess_share": float(we.sum() ** 2 / np.sum(we**2) / len(we))}


def main() -> None:
    """Every catalogue size: truth, replicated logs, bias / RMSE per estimator; JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--truth-requests", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=0, help="embedding: 0 = category (12), G = k-means clusters of "
                                                              "the observable item features")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ope_mips_catalogue.json"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows: dict[str, Any] = {}
    for n_items in args.items:
        world = World(n_items, groups=args.groups)
        truth = world.truth(args.truth_requests, seed=10_000)
        logs = [one_log(world, args.rounds, seed=rep, check=(n_items <= 1000 and rep == 0)) for rep in range(args.reps)]
        row: dict[str, Any] = {"truth": truth}
        for name in ("ips", "snips", "mips", "snmips"):
            values = np.array([log[name] for log in logs])
            row[name] = {"bias": float(values.mean() - truth), "rmse": float(np.sqrt(np.mean((values - truth) ** 2))),
                         "relative_rmse": float(np.sqrt(np.mean((values - truth) ** 2)) / truth),
                         "std": float(values.std(ddof=1))}
        for key in ("max_weight", "max_embedding_weight", "ess_share", "embedding_ess_share"):
            row[key] = float(np.mean([log[key] for log in logs]))
        rows[str(n_items)] = row
        print(n_items, {k: (round(v["relative_rmse"], 4) if isinstance(v, dict) else round(v, 4))
                        for k, v in row.items()}, f"{time.perf_counter() - t0:.0f} s", flush=True)
    record = {"rows": rows, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "command": "python benchmarks/ope_mips_catalogue.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out"),
              "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(), "code_version": code_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out} in {record['wall_s']} s")


if __name__ == "__main__":
    main()
