"""NDCG@10 vs intra-list diversity for MMR and DPP re-ranking EASE candidates on ml-latest-small.

Protocol: leave-one-out split by time. Validation: EASE fitted on train, scored on each user's validation
item; test: EASE fitted on train ∪ validation, scored on the test item (as ``rankstack evaluate`` does). For
every user with a held-out item, EASE gives the top ``--candidates`` unseen items; MMR (λ) and DPP (θ) re-rank
them to 10 over the cosine similarity of genre multi-hot vectors, and intra-list diversity is measured with
the same vectors. The trade-off is chosen on validation only — the most diverse setting whose NDCG@10 is
within ``--max-drop`` (relative) of the un-re-ranked EASE list — and reported on test.
Writes benchmarks/results/rerank_tradeoff.json and docs/figures/rerank_tradeoff.png.

Usage: python benchmarks/rerank_tradeoff.py [--candidates 200] [--l2 200] [--max-drop 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp

from rankstack.data.loaders import load_dataset
from rankstack.data.splits import leave_one_out
from rankstack.evaluation.beyond_accuracy import category_coverage_at_k, gini_of_exposure_at_k
from rankstack.evaluation.metrics import hits_matrix, ndcg_at_k, summarize
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.components import build_source
from rankstack.provenance import code_version, machine_info
from rankstack.reranking import DPP, MMR, DPPConfig, ItemCatalog, ItemSimilarity, MMRConfig
from rankstack.reranking.diversity import DiversityReranker
from rankstack.reranking.similarity import category_multi_hot

ROOT = Path(__file__).resolve().parents[1]
K = 10
GRIDS = {
    "mmr": [1.0, 0.98, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0],
    "dpp": [1.0, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.0],
}


def _reranker(method: str, weight: float, sim: ItemSimilarity) -> DiversityReranker:
    if method == "mmr":
        return MMR(sim, MMRConfig(relevance_weight=weight))
    return DPP(sim, DPPConfig(relevance_weight=weight))


def curve(part: str, split: Any, sim: ItemSimilarity, vectors: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """Fit EASE for ``part`` and measure every grid point of both methods on it."""
    fit, held = fit_and_eval_parts(split, part)
    t0 = time.perf_counter()
    model = build_source("ease", {"l2": args.l2}).fit(fit)
    train, truth = fit.interaction_matrix(), held.interaction_matrix()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    cands = model.retrieve(users, args.candidates)
    fit_s = time.perf_counter() - t0
    cats = sp.csr_matrix(vectors)
    points: dict[str, list[dict[str, float]]] = {}
    for method, grid in GRIDS.items():
        points[method] = []
        for weight in grid:
            t1 = time.perf_counter()
            out = _reranker(method, weight, sim).rerank(cands, K)
            seconds = time.perf_counter() - t1
            recs = np.full((truth.shape[0], K), -1, dtype=np.int64)
            recs[users] = out.item_ids
            m = summarize(recs, truth, [K], train=train, item_vectors=vectors)
            per_user = ndcg_at_k(hits_matrix(recs[users], truth[users]), np.diff(truth.indptr)[users], K)
            points[method].append({
                "weight": weight, "ndcg@10": m["ndcg@10"],
                "ndcg@10_se": float(per_user.std(ddof=1) / np.sqrt(per_user.size)),
                "recall@10": m["recall@10"], "ild@10": m["ild@10"],
                "category_coverage@10": float(category_coverage_at_k(out.item_ids, cats, K).mean()),
                "gini_exposure@10": gini_of_exposure_at_k(out.item_ids, truth.shape[1], K),
                "item_coverage@10": m["coverage@10"], "rerank_s": round(seconds, 3),
                "ms_per_user": round(seconds / len(users) * 1e3, 4),
            })
            print(f"{part:10s} {method} w={weight:<6} ndcg@10={m['ndcg@10']:.4f} ild@10={m['ild@10']:.4f} "
                  f"({seconds:.1f} s)", flush=True)
    return {"users": len(users), "ease_fit_and_retrieve_s": round(fit_s, 1), "points": points}


def choose(points: list[dict[str, float]], max_drop: float) -> dict[str, float]:
    """Most diverse grid point whose NDCG@10 ≥ (1 − max_drop) × NDCG@10 of the un-re-ranked list (weight 1)."""
    base = next(p for p in points if p["weight"] == 1.0)["ndcg@10"]
    ok = [p for p in points if p["ndcg@10"] >= (1 - max_drop) * base]
    return max(ok, key=lambda p: p["ild@10"])


def plot(result: dict[str, Any], path: Path) -> None:
    """Test curves (solid), validation curves (dashed) and the validation-chosen points (stars)."""
    fig, ax = plt.subplots(figsize=(7, 4.8))
    colours = {"mmr": "tab:blue", "dpp": "tab:orange"}
    for part, style in (("validation", "--"), ("test", "-")):
        for method, pts in result[part]["points"].items():
            x, y = [p["ild@10"] for p in pts], [p["ndcg@10"] for p in pts]
            ax.plot(x, y, style, marker="o", ms=3, color=colours[method], alpha=1.0 if part == "test" else 0.45,
                    label=f"{method.upper()} ({part})")
    for method, chosen in result["chosen"].items():
        ax.plot(chosen["test"]["ild@10"], chosen["test"]["ndcg@10"], "*", ms=14, color=colours[method],
                markeredgecolor="black", label=f"{method.upper()} chosen on validation (w={chosen['weight']})")
    ax.set_xlabel("intra-list diversity@10 (1 − cosine of genre vectors)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("ml-latest-small, EASE top-200 re-ranked to 10 (leave-one-out)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    """Run both parts, choose on validation, save JSON and the plot, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--l2", type=float, default=200.0)
    parser.add_argument("--max-drop", type=float, default=0.05)
    args = parser.parse_args()
    start = time.perf_counter()
    data = load_dataset("ml-latest-small")
    split = leave_one_out(data)
    vectors, genres = category_multi_hot(ItemCatalog.from_dataset(data).column("genres"))
    sim = ItemSimilarity(vectors)
    result: dict[str, Any] = {part: curve(part, split, sim, vectors, args) for part in ("validation", "test")}
    result["chosen"] = {}
    for method in GRIDS:
        picked = choose(result["validation"]["points"][method], args.max_drop)
        test = next(p for p in result["test"]["points"][method] if p["weight"] == picked["weight"])
        result["chosen"][method] = {"weight": picked["weight"], "validation": picked, "test": test}
    base_test = next(p for p in result["test"]["points"]["mmr"] if p["weight"] == 1.0)
    png = ROOT / "docs" / "figures" / "rerank_tradeoff.png"
    plot(result, png)
    record = {
        "benchmark": "rerank_tradeoff",
        "command": "python benchmarks/rerank_tradeoff.py " + " ".join(sys.argv[1:]),
        "dataset": "ml-latest-small", "split": "leave_one_out (validation + test, by time)",
        "candidates": {"source": "ease", "l2": args.l2, "n": args.candidates, "exclude_seen": True},
        "k": K, "similarity": f"cosine of genre multi-hot ({len(genres)} genres)",
        "selection": f"max ild@10 with validation ndcg@10 >= (1 - {args.max_drop}) x un-re-ranked ndcg@10",
        "baseline_test": base_test, **result, "figure": str(png.relative_to(ROOT)),
        "machine": machine_info(), "code": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    out = ROOT / "benchmarks" / "results" / "rerank_tradeoff.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"EASE only (test): ndcg@10={base_test['ndcg@10']:.4f} ± {base_test['ndcg@10_se']:.4f} (s.e.) "
          f"ild@10={base_test['ild@10']:.4f} category_coverage@10={base_test['category_coverage@10']:.4f} "
          f"gini@10={base_test['gini_exposure@10']:.4f}")
    for method, c in result["chosen"].items():
        t = c["test"]
        print(f"{method.upper()} w={c['weight']} (chosen on validation) test: ndcg@10={t['ndcg@10']:.4f} "
              f"± {t['ndcg@10_se']:.4f} "
              f"ild@10={t['ild@10']:.4f} category_coverage@10={t['category_coverage@10']:.4f} "
              f"gini@10={t['gini_exposure@10']:.4f}")
    print(f"wall {record['wall_s']} s; wrote {out.relative_to(ROOT)} and {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
