"""CPU time of the exploration stage per request: one pool of ``--pool`` re-ranked items, k slots, per-request draws.

Usage: python benchmarks/exploration_cpu.py [--pool 50] [--k 10] [--calls 2000] [--repeats 3]
Prints one line per policy (the best of ``--repeats`` timings, µs per request) and writes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rankstack.bandits.draws import request_rng
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.exploration_stage import explore


def main() -> None:
    """Time ``explore`` for ε-greedy and softmax on the same pool."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pool = np.arange(args.pool)
    scores = np.sort(np.random.default_rng(0).normal(size=args.pool))[::-1]
    for policy in ("epsilon_greedy", "softmax"):
        stage = ExplorationStage(policy=policy, epsilon=0.05, temperature=1.0)  # type: ignore[arg-type]
        best = float("inf")
        for _ in range(args.repeats):
            start = time.process_time()
            for call in range(args.calls):
                explore(pool, scores, args.k, stage, request_rng(0, f"r{call}", "u"))
            best = min(best, (time.process_time() - start) / args.calls)
        print(f"{policy}: {best * 1e6:.1f} us per request (pool {args.pool}, k {args.k})")


if __name__ == "__main__":
    main()
