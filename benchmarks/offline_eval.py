"""Wall time of the offline evaluation of a trained pipeline (``evaluate_recommender``: every held-out user's slate
through the pipeline, then full-ranking metrics), in process.

Loads a pipeline artifact (e.g. the one ``rankstack train`` writes for the default pipeline on ml-latest-small),
reloads and re-splits the dataset its manifest names, and times ``--repeats`` evaluations of the held-out part the
training evaluated on. Prints the wall and CPU time of each and the final-slate metrics (which must not change between
code versions on the same artifact).

Usage: python benchmarks/offline_eval.py ARTIFACT [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.offline import evaluate_recommender
from rankstack.pipeline.pipeline import Pipeline


def main() -> None:
    """Load, re-split, time the evaluations, print them and the metrics."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = Pipeline.load(args.artifact)
    data_info = pipeline.parts.manifest["data"]
    data = load_dataset(data_info["name"], args.data_dir)
    fit_data, held_out = fit_and_eval_parts(make_split(data, data_info["split"]), data_info["eval_on"])
    pipeline.warmup()
    ks = pipeline.config.evaluation.ks
    for run in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = evaluate_recommender(pipeline, fit_data, held_out, ks)
        print(f"run {run + 1}: {time.perf_counter() - t0:.2f} s wall, {time.process_time() - c0:.2f} s CPU for "
              f"{int(metrics['users_evaluated'])} users", flush=True)
    print(json.dumps({k: round(v, 6) for k, v in metrics.items()}))


if __name__ == "__main__":
    main()
