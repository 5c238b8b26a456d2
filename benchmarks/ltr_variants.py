"""LightGBM variants of the LambdaRank ranker on rows saved by ``ltr_ablation.py --save-rows`` (no source refits).

Each variant is a JSON object of LightGBM parameters, plus optional ``base`` (a source whose order the trees
correct) and ``refit`` (train + validation rows after early stopping); scored on the held-out split the rows
were saved for (greedy: the top of the ranker's order over the served candidates).

Usage: python benchmarks/ltr_variants.py ROWS.npz CONFIG validation|test '[{"num_leaves": 7}, {"base": "ease"}]'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ltr_ablation import slates

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.config import load_pipeline_config
from rankstack.ranking.lambdarank import prior_scores
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank


def main() -> None:
    rows, config_path, eval_on = np.load(sys.argv[1]), sys.argv[2], sys.argv[3]
    variants = json.loads(sys.argv[4]) if len(sys.argv) > 4 else [{}]
    config = load_pipeline_config(config_path)
    data = load_dataset(config.data.name)
    fit, held = fit_and_eval_parts(make_split(data, config.data.split or standard_split(config.data.name, data)),
                                   eval_on)
    evaluator = Evaluator.from_datasets(fit, held, ks=[10, 20])
    names = [str(n) for n in rows["names"]]
    train = RankingRows(rows["train_x"], rows["train_y"], rows["train_g"]).with_positives()
    valid = RankingRows(rows["valid_x"], rows["valid_y"], rows["valid_g"]).with_positives()

    def held_out(scores: np.ndarray) -> tuple[float, float]:
        m = evaluator.evaluate_recs(slates(scores, rows["test_mask"], rows["test_items"], rows["users"],
                                           held.n_users, 20))
        return round(m["ndcg@10"], 4), round(m["recall@20"], 4)

    for variant in variants:
        base, refit = variant.pop("base", None), variant.pop("refit", False)
        if base is not None:
            print(f"prior of {base} alone: ndcg@10, recall@20 = {held_out(prior_scores(rows['test_x'], names, base))}")
        text, report = fit_lambdarank(train, valid, names, params=variant, refit=refit, base=base)
        scores = lightgbm.Booster(model_str=text).predict(rows["test_x"]) + prior_scores(rows["test_x"], names, base)
        print(f"{variant} base={base} refit={refit}: ndcg@10, recall@20 = {held_out(scores)} "
              f"({report['best_iteration']} trees, window NDCG@10 {report['validation_ndcg@10']})", flush=True)


if __name__ == "__main__":
    main()
