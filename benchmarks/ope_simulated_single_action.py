"""Bias and RMSE of every single-action estimator against the true policy value, 1k → 1M logged rounds.

A contextual bandit with known click probabilities q(x, a) = σ(x·θ_a + b_a) (x ~ N(0, I_5), 10 actions); the logger is
a softmax over noisy scores, the evaluated policy ε-greedy (ε = 0.2) over other noisy scores; the true value is
E_x Σ_a π_e(a|x) q(x, a) on 1M fresh contexts. Reward model: the logistic model on [x, one-hot action] (misspecified:
no x-by-action interaction), cross-fitted over 2 folds. Writes benchmarks/results/ope_simulated_single_action.json.

    python benchmarks/ope_simulated_single_action.py [--sizes 1000 10000 100000 1000000] [--reps 20 20 10 3]
    python benchmarks/ope_simulated_single_action.py --plot-only   # docs/figures/ope_simulated_rmse.png from the JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.estimators import ALL_ESTIMATORS, make_estimator
from rankstack.ope.policy_value import off_policy_data
from rankstack.ope.reward_models import LogisticRewardModel

D, K = 5, 10
WORLD = np.random.default_rng(12345)
THETA, BIAS = WORLD.normal(0, 0.6, (D, K)), WORLD.normal(-2.0, 0.5, K)
LOGGER = THETA + WORLD.normal(0, 0.5, (D, K))
TARGET = THETA + WORLD.normal(0, 0.3, (D, K))
EMBEDDING = np.arange(K) % 4  # four embedding groups (rewards do depend on the action within a group: MIPS biased)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def policies(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(click probabilities, logger π_0, target π_e), each [n, K]."""
    q = 1 / (1 + np.exp(-(x @ THETA + BIAS)))
    pi0 = softmax(x @ LOGGER + BIAS)
    greedy = np.eye(K)[np.argmax(x @ TARGET + BIAS, axis=1)]
    return q, pi0, 0.8 * greedy + 0.2 / K


def true_value(n: int = 1_000_000, seed: int = 999) -> float:
    """E_x Σ_a π_e(a|x) q(x, a) on ``n`` fresh contexts."""
    x = np.random.default_rng(seed).normal(size=(n, D))
    q, _, pi_e = policies(x)
    return float(np.mean(np.sum(q * pi_e, axis=1)))


def one_log(n: int, seed: int) -> dict[str, float]:
    """Every estimator on one simulated log of ``n`` rounds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D))
    q, pi0, pi_e = policies(x)
    action = (pi0.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    rows = np.arange(n)
    reward = (rng.random(n) < q[rows, action]).astype(float)
    log = BanditLog(reward, action, np.zeros(n, dtype=np.int64), pi0[rows, action], x, np.arange(K), 1)
    data = off_policy_data(log, pi_e[:, :, None], make_model=LogisticRewardModel, folds=2, seed=seed,
                           behavior_dist=pi0[:, :, None], action_embedding=EMBEDDING)
    return {name: make_estimator(name).estimate(data) for name in ALL_ESTIMATORS}


def plot(table: dict[str, object], path: Path) -> None:
    """Relative RMSE against logged rounds, one line per estimator (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankstack.plotting import save_figure

    sizes: dict[str, dict[str, object]] = table["sizes"]  # type: ignore[assignment]
    ns = [int(n) for n in sizes]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name in ALL_ESTIMATORS:
        values = [sizes[str(n)]["estimators"][name]["relative_rmse"] for n in ns]  # type: ignore[index]
        ax.plot(ns, values, marker="o", label=name)
    ax.axhline(0.05, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("logged rounds")
    ax.set_ylabel("RMSE / true value")
    ax.set_title("single-action OPE on the simulated bandit", fontsize=10)
    ax.legend(frameon=False, fontsize=7, ncol=3)
    save_figure(fig, path)


def main() -> None:
    """Run the grid and write the table (or only redraw the plot from it)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--reps", type=int, nargs="+", default=[20, 20, 10, 3])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ope_simulated_single_action.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/figures/ope_simulated_rmse.png"))
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot)
        return
    truth = true_value()
    table: dict[str, object] = {"true_value": truth, "sizes": {}}
    for n, reps in zip(args.sizes, args.reps, strict=True):
        start = time.time()
        runs = [one_log(n, seed) for seed in range(reps)]
        row = {}
        for name in ALL_ESTIMATORS:
            est = np.array([r[name] for r in runs])
            row[name] = {"bias": float(est.mean() - truth), "rmse": float(np.sqrt(np.mean((est - truth) ** 2))),
                         "relative_rmse": float(np.sqrt(np.mean((est - truth) ** 2)) / truth)}
        table["sizes"][str(n)] = {"reps": reps, "wall_s": round(time.time() - start, 1), "estimators": row}  # type: ignore[index]
        print(n, json.dumps({k: round(v["relative_rmse"], 4) for k, v in row.items()}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(table, indent=2) + "\n")
    plot(table, args.plot)


if __name__ == "__main__":
    main()
