"""Time EASE along a λ grid: separate fits per λ vs the λ path (one Gram matrix; Cholesky per λ or one
eigendecomposition), and how far each path's B is from the separate fit's. Fits only (no evaluation).

Usage: python benchmarks/ease_lambda_path.py --dataset movielens-1m --l2 100,200,500 [--methods cholesky,eigh]
Writes benchmarks/results/ease_lambda_path-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.provenance import machine_info
from rankstack.retrieval.ease import EASE, EASEConfig

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    """Fit separately per λ, then along each path method; print and save wall times and differences."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--l2", default="100,200,500")
    parser.add_argument("--methods", default="cholesky,eigh")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    l2s = [float(v) for v in args.l2.split(",")]
    data = load_dataset(args.dataset, args.data_dir)
    fit, _ = fit_and_eval_parts(make_split(data, standard_split(args.dataset, data)), "validation")
    config = EASEConfig(device="cpu")
    separate, walls = {}, {}
    start = time.perf_counter()
    for l2 in l2s:
        separate[l2] = EASE(config.model_copy(update={"l2": l2})).fit(fit).weights_.clone()
    walls["separate fits"] = time.perf_counter() - start
    diffs: dict[str, dict[str, float]] = {}
    for method in args.methods.split(","):
        start = time.perf_counter()
        diffs[method] = {}
        for model in EASE(config).fit_path(fit, l2s, method=method):  # type: ignore[arg-type]
            diffs[method][f"{model.config.l2:g}"] = float((model.weights_ - separate[model.config.l2]).abs().max())
        walls[f"path, {method}"] = time.perf_counter() - start
    record = {"dataset": args.dataset, "items": data.n_items, "l2": l2s, "wall_s": walls,
              "max_abs_diff_vs_separate": diffs, "torch_threads": torch.get_num_threads(),
              "loadavg": Path("/proc/loadavg").read_text().split()[:3], "machine": machine_info()}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ease_lambda_path-{args.dataset}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("items", "l2", "wall_s", "max_abs_diff_vs_separate", "loadavg")},
                     indent=1))


if __name__ == "__main__":
    main()
