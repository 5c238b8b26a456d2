"""Candidate recall@{100,200,500,1000} per source and for the merged set (equal quotas, reciprocal-rank fill).

Usage: python benchmarks/funnel.py --dataset ml-latest-small [--sources popular,itemknn,ease,lightgcn]
       [--set lightgcn.epochs=50] [--data-dir DIR] [--tag TAG] [--device auto|cpu|cuda] [--batch-users 2048]
Sources are fitted on train ∪ validation of the standard split and scored on the test events; each source
scores and takes its top-k on its own device, the merges run on --device (CUDA when present).
Writes benchmarks/results/funnel-<dataset>[-TAG].json and .png; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.device import resolve_device
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.components import build_source
from rankstack.provenance import machine_info
from rankstack.retrieval.funnel import funnel_recall
from rankstack.retrieval.source import CandidateSource

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    """Fit each source, compute the funnel report, save JSON + plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--sources", default="popular,itemknn,ease")
    parser.add_argument("--set", action="append", default=[], help="source.key=value")
    parser.add_argument("--ks", default="100,200,500,1000")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--tag", default="")
    parser.add_argument("--device", default="auto", help="where the merges run")
    parser.add_argument("--batch-users", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = resolve_device(args.device)
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
        print(f"fitted {name} in {fit_s[name]} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"funnel-{args.dataset}" + (f"-{args.tag}" if args.tag else "")
    record: dict[str, object] = {
        "command": "python benchmarks/funnel.py " + f"--dataset {args.dataset} --sources {args.sources}"
        + "".join(f" --set {kv}" for kv in args.set) + (f" --tag {args.tag}" if args.tag else ""),
        "split": split, "fit_s": fit_s, "device": str(device), "batch_users": args.batch_users}
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")  # the fit times survive a kill
    t1 = time.perf_counter()
    report = funnel_recall(sources, held_out, [int(k) for k in args.ks.split(",")], batch_size=args.batch_users,
                           device=device)
    recall_s = round(time.perf_counter() - t1, 1)
    report.plot(args.out / f"{stem}.png", title=f"candidate recall on {args.dataset} ({split}, test)")
    record.update({"funnel_recall_s": recall_s, "wall_s": round(time.perf_counter() - t0, 1),
                   "machine": machine_info(), **report.to_json()})
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(report.table())
    merged = report.recall["merged"]
    print(f"DONE funnel {stem}: {report.n_users} test users; merged recall "
          + " ".join(f"@{k} {v:.4f}" for k, v in merged.items())
          + f"; fit {fit_s}; funnel_recall {recall_s} s on {device}; wall {record['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
