"""In-process cost of the online policy stage (issue 18): ``OnlinePolicy.choose`` for one request (pool 40, k 20,
dim 8, random unit vectors for 10,000 users and items) after folding 20,000 random events, and the fold's time.

Usage: OMP_NUM_THREADS=1 python benchmarks/online_policy_cost.py
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from rankstack.bandits.draws import request_rng
from rankstack.bandits.pool_stats import quantize
from rankstack.data.idmap import IdMap
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.online_policy import OnlinePolicy, PolicyFeatures
from rankstack.state.feedback_log import LoggedEvent

N_USERS, N_ITEMS, DIM = 10_000, 10_000, 8


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random unit vectors, fixed-point."""
    x = rng.normal(size=(n, DIM))
    return quantize(x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.int16)


def main() -> None:
    """Time the fold and 500 choices per policy."""
    rng = np.random.default_rng(0)
    features = PolicyFeatures(unit(rng, N_USERS), unit(rng, N_ITEMS))
    users = IdMap(pl.Series([f"u{j}" for j in range(N_USERS)]), name="u")
    items = IdMap(pl.Series([f"i{j}" for j in range(N_ITEMS)]), name="i")
    log = [LoggedEvent(n + 1, f"u{rng.integers(N_USERS)}", f"i{rng.integers(N_ITEMS)}",
                       "click" if rng.random() < 0.1 else "impression") for n in range(20_000)]
    for name in ("linucb", "lints", "squarecb", "bernoulli_ts", "ridge_epsilon_greedy"):
        policy = OnlinePolicy(ExplorationStage(policy=name, pool=40), features, users, items)  # type: ignore[arg-type]
        started = time.perf_counter()
        policy.fold(log)
        fold_ms = 1000 * (time.perf_counter() - started)
        times = []
        for r in range(500):
            pool = rng.choice(N_ITEMS, 40, replace=False)
            started = time.perf_counter()
            policy.choose(int(rng.integers(N_USERS)), pool, 20, request_rng(0, f"r{r}", "u"))
            times.append(1000 * (time.perf_counter() - started))
        print(f"{name}: choose median {np.median(times):.3f} ms, p99 {np.percentile(times, 99):.3f} ms; "
              f"fold of 20,000 events {fold_ms:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
