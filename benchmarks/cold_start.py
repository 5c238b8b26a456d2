"""Cold-start items on ml-latest-small: 10% of movies are held out of training entirely; how well are they
retrieved from their features (genres, year) by the two-tower model, against popularity baselines?

Protocol: a seeded 10% of items; train = every event on the other items; test = every event on held-out items.
(a) full catalog: recall@K of the held-out items when ranking all items (train items excluded);
(b) cold catalog only: rank just the held-out items. Baselines: most-popular (cold items have no
popularity, so its order among them is arbitrary) and genre popularity (mean training popularity share
of the item's genres: a feature-only baseline).
Usage: python benchmarks/cold_start.py [--set epochs=10] ; writes benchmarks/results/cold-start-ml-latest-small.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
import yaml

from rankstack.data.loaders import load_dataset
from rankstack.evaluation.evaluator import Evaluator
from rankstack.pipeline.components import build_source
from rankstack.provenance import machine_info
from rankstack.retrieval.popular import MostPopular

RESULTS = Path(__file__).parent / "results"


class Restricted:
    """Scores of ``model`` on a subset of item columns."""

    def __init__(self, score: object, columns: np.ndarray) -> None:
        self.inner, self.columns = score, torch.from_numpy(columns)

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Columns of the wrapped scores."""
        return torch.as_tensor(self.inner.score(user_ids))[:, self.columns]  # type: ignore[attr-defined]


class GenrePopularity:
    """score(i) = mean over i's genres g of the share of training events on genre g (same for all users)."""

    def __init__(self, genres: list[list[str]], counts: np.ndarray) -> None:
        share: dict[str, float] = {}
        for gs, c in zip(genres, counts, strict=True):
            for g in gs:
                share[g] = share.get(g, 0.0) + float(c)
        total = sum(share.values()) or 1.0
        self.item_score = torch.tensor([np.mean([share.get(g, 0.0) / total for g in gs]) if gs else 0.0
                                        for gs in genres], dtype=torch.float32)

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """The same genre score for every user."""
        return self.item_score.unsqueeze(0).expand(len(user_ids), -1)


def main() -> None:
    """Hold items out, fit, evaluate both views, save JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], help="two-tower key=value")
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in args.set}
    t0 = time.perf_counter()
    data = load_dataset("ml-latest-small")
    rng = np.random.default_rng(args.seed)
    cold = np.zeros(data.n_items, bool)
    cold[rng.choice(data.n_items, int(args.share * data.n_items), replace=False)] = True
    is_cold = pl.Series(cold[data.events["item_id"].to_numpy()])
    train, test = data.with_events(data.events.filter(~is_cold)), data.with_events(data.events.filter(is_cold))
    t1 = time.perf_counter()
    tower = build_source("two-tower", params).fit(train)
    fit_s = time.perf_counter() - t1
    popular = MostPopular().fit(train)
    assert data.item_features is not None
    genres_by_item: list[list[str]] = [[] for _ in range(data.n_items)]
    for iid, gs in zip(data.item_features["item_id"].to_list(), data.item_features["genres"].to_list(), strict=True):
        genres_by_item[iid] = list(gs or [])
    counts = np.asarray(train.interaction_matrix().sum(axis=0)).ravel()
    genre_pop = GenrePopularity(genres_by_item, counts)
    ks = [10, 20, 100]
    full = Evaluator.from_datasets(train, test, ks=ks)
    cols = np.flatnonzero(cold)
    x_tr, x_te = train.interaction_matrix()[:, cols], test.interaction_matrix()[:, cols]
    only_cold = Evaluator(x_tr, x_te, ks=ks)
    pick = ("recall@10", "recall@20", "recall@100", "ndcg@20")
    results = {"full_catalog": {}, "cold_catalog": {}}
    for name, model in (("two-tower", tower), ("popular", popular), ("genre-popularity", genre_pop)):
        results["full_catalog"][name] = {m: v for m, v in full.evaluate(model).items() if m in pick}
        results["cold_catalog"][name] = {m: v for m, v in only_cold.evaluate(Restricted(model, cols)).items()
                                         if m in pick}
    rand = np.argsort(rng.random((x_te.shape[0], len(cols))), axis=1)[:, :100]
    results["cold_catalog"]["random"] = {m: v for m, v in only_cold.evaluate_recs(rand).items() if m in pick}
    record = {"command": "python benchmarks/cold_start.py" + "".join(f" --set {kv}" for kv in args.set),
              "cold_items": int(cold.sum()), "test_users": len(full.user_ids), "two_tower_fit_s": round(fit_s, 1),
              "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(), "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold-start-ml-latest-small.json").write_text(json.dumps(record, indent=2) + "\n")
    for view, rows in results.items():
        print(f"\n{view}\n| model | " + " | ".join(pick) + " |\n|---|" + "---|" * len(pick))
        for name, vals in rows.items():
            print(f"| {name} | " + " | ".join(f"{vals[m]:.4f}" for m in pick) + " |")
    print(f"{record['cold_items']} cold items, {record['test_users']} users; wall {record['wall_s']} s")


if __name__ == "__main__":
    main()
