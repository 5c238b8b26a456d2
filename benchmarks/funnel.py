"""Candidate recall@{100,200,500,1000} per source and for the merged set (equal quotas, reciprocal-rank fill).

Usage: python benchmarks/funnel.py --dataset ml-latest-small [--sources popular,itemknn,ease,lightgcn]
       [--set lightgcn.epochs=50] [--data-dir DIR]
Sources are fitted on train ∪ validation of the standard split and scored on the test events.
Writes benchmarks/results/funnel-<dataset>.json and .png; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.experiment import fit_and_eval_parts
from rankstack.provenance import machine_info
from rankstack.retrieval.base import CandidateSource
from rankstack.retrieval.funnel import funnel_recall
from rankstack.retrieval.registry import build_source

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    """Fit each source, compute the funnel report, save JSON + plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--sources", default="popular,itemknn,ease")
    parser.add_argument("--set", action="append", default=[], help="source.key=value")
    parser.add_argument("--ks", default="100,200,500,1000")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    split = "predefined" if args.dataset == "gowalla" else "leave_one_out"
    fit, held_out = fit_and_eval_parts(make_split(data, split), "test")
    params: dict[str, dict[str, object]] = {}
    for kv in args.set:
        key, value = kv.split("=", 1)
        src, field = key.split(".", 1)
        params.setdefault(src, {})[field] = yaml.safe_load(value)
    sources: dict[str, CandidateSource] = {}
    fit_s: dict[str, float] = {}
    for name in args.sources.split(","):
        t1 = time.perf_counter()
        sources[name] = build_source(name, params.get(name, {})).fit(fit)
        fit_s[name] = round(time.perf_counter() - t1, 2)
    report = funnel_recall(sources, held_out, [int(k) for k in args.ks.split(",")])
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.plot(RESULTS / f"funnel-{args.dataset}.png", title=f"candidate recall on {args.dataset} ({split}, test)")
    record = {"command": "python benchmarks/funnel.py " + f"--dataset {args.dataset} --sources {args.sources}"
              + "".join(f" --set {kv}" for kv in args.set), "split": split, "fit_s": fit_s,
              "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(), **report.to_json()}
    (RESULTS / f"funnel-{args.dataset}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(report.table())
    print(f"{report.n_users} test users; fit {fit_s}; wall {record['wall_s']} s")


if __name__ == "__main__":
    main()
