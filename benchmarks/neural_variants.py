"""Neural-ranker variants next to LambdaRank on rows saved by ``ltr_ablation.py --save-rows`` (no source refits).

Each variant is a JSON object of ``NeuralRankerConfig`` settings, plus optional ``base`` (a source whose order the
network corrects) and ``seed``; ``{"lambdarank": true}`` is the LambdaRank ranker with its defaults. Scored on the
held-out split the rows were saved for (greedy: the top of the ranker's order over the served candidates).
One torch / LightGBM thread.

Usage: python benchmarks/neural_variants.py ROWS.npz CONFIG validation|test '[{"lambdarank": true}, {}]'
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import lightgbm
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ltr_ablation import slates

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.config import load_pipeline_config
from rankstack.ranking.lambdarank import prior_scores
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank
from rankstack.ranking.neural_ranker import NeuralRankerConfig
from rankstack.ranking.neural_ranker_train import fit_neural


def main() -> None:
    torch.set_num_threads(1)
    rows, config_path, eval_on = np.load(sys.argv[1]), sys.argv[2], sys.argv[3]
    variants = json.loads(sys.argv[4]) if len(sys.argv) > 4 else [{"lambdarank": True}, {}]
    config = load_pipeline_config(config_path)
    data = load_dataset(config.data.name)
    fit, held = fit_and_eval_parts(make_split(data, config.data.split or standard_split(config.data.name, data)),
                                   eval_on)
    evaluator = Evaluator.from_datasets(fit, held, ks=[10, 20])
    names = [str(n) for n in rows["names"]]
    train = RankingRows(rows["train_x"], rows["train_y"], rows["train_g"]).with_positives()
    valid = RankingRows(rows["valid_x"], rows["valid_y"], rows["valid_g"]).with_positives()
    print(f"{len(train.groups)} training groups ({len(train.labels):,} rows), {len(valid.groups)} validation groups, "
          f"{len(names)} features", flush=True)

    def held_out(scores: np.ndarray) -> tuple[float, float]:
        m = evaluator.evaluate_recs(slates(scores, rows["test_mask"], rows["test_items"], rows["users"],
                                           held.n_users, 20))
        return round(m["ndcg@10"], 4), round(m["recall@20"], 4)

    for variant in variants:
        t0 = time.perf_counter()
        base, seed = variant.pop("base", None), variant.pop("seed", 0)
        if variant.pop("lambdarank", False):
            text, report = fit_lambdarank(train, valid, names, params={"seed": seed, **variant}, base=base)
            scores = lightgbm.Booster(model_str=text).predict(rows["test_x"]) + \
                prior_scores(rows["test_x"], names, base)
            what = f"lambdarank {variant} base={base}: {report['best_iteration']} trees"
        else:
            net, report = fit_neural(train, valid, names, NeuralRankerConfig(**variant), seed=seed, base=base)
            with torch.inference_mode():
                scores = net(torch.from_numpy(rows["test_x"].astype(np.float32))).double().numpy() + \
                    prior_scores(rows["test_x"], names, base)
            what = (f"neural {variant} base={base} seed={seed}: best epoch {report['best_epoch']} of "
                    f"{report['epochs_run']} ({report['stopped_by']}), CPU {report['fit_cpu_s']} s, permutation "
                    f"importance {report['importance_ndcg@10_drop']}")
        print(f"{what}, window NDCG@10 {report['validation_ndcg@10']}; ndcg@10, recall@20 = {held_out(scores)}; "
              f"fit {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
