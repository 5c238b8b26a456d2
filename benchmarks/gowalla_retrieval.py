"""Gowalla (LightGCN split) benchmark for the learned retrievers, with a validation-recall-vs-wall-time curve.

Usage (GPU session; the models' ``gpu`` preset is the base, ``--set`` overrides it):
  python benchmarks/gowalla_retrieval.py --model lightgcn --set epochs=1000 --set batch_size=8192 --set lr=0.005
  python benchmarks/gowalla_retrieval.py --model two-tower --set epochs=50 --set validation_ratio=0.05
Writes benchmarks/results/gowalla-<model>[-tag].json (run record + training history) and a PNG curve;
prints a markdown row. Test figures use the fit on all train data (early stopping on a holdout carved from it).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.experiments.evaluate_run import evaluate_source, fit_and_eval_parts
from rankstack.pipeline.components import build_source
from rankstack.provenance import code_version, machine_info

RESULTS = Path(__file__).parent / "results"


def plot_curve(history: list[dict[str, float]], key: str, path: Path, title: str) -> None:
    """Validation metric vs wall time (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["wall_s"], h[key]) for h in history if key in h]
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*zip(*points, strict=True), marker=".")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(key)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Run one experiment through the registry and save record, history and curve."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=["lightgcn", "two-tower"])
    parser.add_argument("--set", action="append", default=[], help="key=value model setting")
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--k", default="20")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    params = {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in args.set}
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0
    split = "predefined" if args.dataset == "gowalla" else "leave_one_out"
    ks = [int(k) for k in args.k.split(",")]
    model = build_source(args.model, {"preset": "gpu", **params})  # the GPU schedule unless --set says otherwise
    fit_data, held_out = fit_and_eval_parts(make_split(data, split), "test")
    metrics, timings = evaluate_source(model, fit_data, held_out, ks)
    record = {"dataset": data.name, "split": split, "model": args.model,
              "config": model.config.model_dump(mode="json"), "metrics": metrics,
              "timings": {"load_s": round(load_s, 3), **timings}, "machine": machine_info(),
              "code_version": code_version(), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "history": getattr(model, "history_", [])}
    record["command"] = f"python benchmarks/gowalla_retrieval.py --model {args.model}" + "".join(
        f" --set {kv}" for kv in args.set)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}-{args.model}" + (f"-{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    plot_curve(record["history"], f"val_recall@{params.get('eval_k', 20)}", RESULTS / f"{stem}-curve.png",
               f"{args.model} on {args.dataset}: validation recall vs wall time")
    m, t, mach = metrics, record["timings"], record["machine"]
    kmax = max(ks)
    print(f"| {args.dataset} | {args.model} {params or ''} | {m[f'recall@{kmax}']:.4f} | {m[f'ndcg@{kmax}']:.4f} "
          f"| {t['fit_s']:.1f} s | {t['evaluate_s']:.1f} s | {mach['cpu']} ({mach['cpu_count']} cores), "
          f"gpu={mach['gpu']} | {record['created_at'][:10]} |")


if __name__ == "__main__":
    main()
