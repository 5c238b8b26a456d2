"""Every model with its default (CPU) settings through ``rankstack evaluate --json``: fit time, epochs, best epoch,
why training stopped and the test metrics, against a fit-time target (issue 15: ≤ 300 s on a ≤ 100k-event log).

Usage:
  python benchmarks/cpu_defaults.py --dataset movielens-100k [--models lightgcn,sasrec] [--target-s 300]
  python benchmarks/cpu_defaults.py --dataset movielens-1m --set time_budget_s=600 --timeout-s 900

Each model runs in its own ``rankstack evaluate`` process (as a user runs it), bounded by ``--timeout-s``;
``--set`` goes to the trained models only (the closed-form ones take no budget). Writes each run's JSON to
``benchmarks/results/issue15-<dataset>-<model>[-<tag>].json`` and prints markdown rows with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("popular", "itemknn", "ease", "als", "lightgcn", "sasrec", "two-tower")
TRAINED = {"als", "lightgcn", "sasrec", "two-tower", "multitask"}


def run(dataset: str, model: str, settings: list[str], timeout_s: float, runs_dir: Path) -> dict[str, object]:
    """One ``rankstack evaluate --json`` process: its record (or why there is none), wall time and load."""
    cmd = ["rankstack", "evaluate", "--dataset", dataset, "--model", model, "--json", "--runs-dir", str(runs_dir)]
    if model in TRAINED:
        cmd += [x for s in settings for x in ("--set", s)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"model": model, "command": " ".join(cmd), "error": f"no result within {timeout_s:g} s",
                "wall_s": round(time.perf_counter() - start, 1), "load_before": load}
    out: dict[str, object] = {"model": model, "command": " ".join(cmd), "wall_s": round(time.perf_counter() - start, 1),
                              "load_before": load, "load_after": os.getloadavg()[0]}
    if done.returncode != 0:
        out["error"] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    else:
        out["record"] = json.loads(done.stdout)
    return out


def markdown_row(result: dict[str, object], target_s: float) -> str:
    """``| model | fit s | epochs | best | stopped by | NDCG@10 | HR@10 | Recall@20 | within target |``."""
    if "record" not in result:
        return f"| {result['model']} | — | — | — | — | — | — | — | {result['error']} |"
    r = result["record"]
    assert isinstance(r, dict)
    m, fit_s = r["metrics"], r["timings"]["fit_s"]
    best = "—" if r["best_epoch"] is None else r["best_epoch"]
    ok = "yes" if fit_s <= target_s else "no"
    return (f"| {result['model']} | {fit_s:.1f} | {r['epochs_run']} | {best} | {r['stopped_by']} | "
            f"{m['ndcg@10']:.4f} | {m['hr@10']:.4f} | {m['recall@20']:.4f} | {ok} |")


def main() -> None:
    """Run the models one after another and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--set", action="append", default=[], help="key=value for the trained models")
    parser.add_argument("--target-s", type=float, default=300.0)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--tag", default="", help="suffix of the result files (keeps earlier runs)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    print("| model | fit s | epochs run | best epoch | stopped by | NDCG@10 | HR@10 | Recall@20 | fit ≤ target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        result = run(args.dataset, model, args.set, args.timeout_s, args.runs_dir)
        suffix = f"-{args.tag}" if args.tag else ""
        (RESULTS / f"issue15-{args.dataset}-{model}{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(markdown_row(result, args.target_s), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
