"""Time the full-ranking evaluator on Gowalla's shape; writes benchmarks/results/evaluator_speed.json.

Uses the LightGCN Gowalla split (``lightgcn/gowalla/{train,test}.txt.gz`` under the data directory) when
present, else random sparse train/test matrices of the same shape and density. Embeddings are random
(29,858 × 64 users, 40,981 × 64 items): the figures measure speed only, not model quality.

Usage: python benchmarks/evaluator_speed.py [--device cpu] [--batch-size N] [--repeats 1] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.evaluation.evaluator import Evaluator
from rankstack.paths import data_dirs

RESULTS = Path(__file__).parent / "results"
N_USERS, N_ITEMS, DIM = 29_858, 40_981, 64
TRAIN_NNZ, TEST_NNZ = 810_128, 217_242


def read_lightgcn(path: Path, n_users: int, n_items: int) -> sp.csr_matrix:
    """Read a LightGCN ``user item item ...`` gzip file (0-based ids) into a binary CSR matrix."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ids = np.array(line.split(), dtype=np.int64)
            if ids.size > 1:
                users.append(np.full(ids.size - 1, ids[0]))
                items.append(ids[1:])
    u, i = np.concatenate(users), np.concatenate(items)
    mat = sp.csr_matrix((np.ones(u.size, dtype=np.float32), (u, i)), shape=(n_users, n_items))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def find_gowalla(data_dir: Path | None) -> Path | None:
    """The Gowalla LightGCN folder, from the usual data directories or next to the repository."""
    candidates = [d / "lightgcn" / "gowalla" for d in data_dirs(data_dir)]
    candidates.append(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lightgcn" / "gowalla")
    for folder in candidates:
        if (folder / "train.txt.gz").is_file() and (folder / "test.txt.gz").is_file():
            return folder.resolve()
    return None


def random_split(seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Random binary train/test of Gowalla's shape and interaction counts (test minus train overlap)."""
    rng = np.random.default_rng(seed)

    def draw(nnz: int) -> sp.csr_matrix:
        rows, cols = rng.integers(0, N_USERS, nnz), rng.integers(0, N_ITEMS, nnz)
        mat = sp.csr_matrix((np.ones(nnz, dtype=np.float32), (rows, cols)), shape=(N_USERS, N_ITEMS))
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat

    train, test = draw(TRAIN_NNZ), draw(TEST_NNZ)
    test = test - test.multiply(train)
    test.eliminate_zeros()
    return train, sp.csr_matrix(test)


def main() -> None:
    """Build data and embeddings, time ``Evaluator.evaluate_embeddings``, print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "evaluator_speed.json")
    args = parser.parse_args()

    t0 = time.perf_counter()
    folder = find_gowalla(args.data_dir)
    if folder is not None:
        train = read_lightgcn(folder / "train.txt.gz", N_USERS, N_ITEMS)
        test = read_lightgcn(folder / "test.txt.gz", N_USERS, N_ITEMS)
        data = f"gowalla (LightGCN split, {folder})"
    else:
        train, test = random_split(args.seed)
        data = "random sparse matrices of Gowalla's shape"
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    user_emb = torch.from_numpy(rng.standard_normal((N_USERS, DIM), dtype=np.float32))
    item_emb = torch.from_numpy(rng.standard_normal((N_ITEMS, DIM), dtype=np.float32))

    t1 = time.perf_counter()
    evaluator = Evaluator(train, test, ks=(10, 20), batch_size=args.batch_size, device=args.device)
    setup_s = time.perf_counter() - t1
    walls = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        metrics = evaluator.evaluate_embeddings(user_emb, item_emb)
        if evaluator.device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)

    record = {
        "benchmark": "evaluator_speed",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "data": data,
        "shape": {"users": N_USERS, "items": N_ITEMS, "dim": DIM, "train_nnz": int(train.nnz),
                  "test_nnz": int(test.nnz), "users_evaluated": int(metrics["users_evaluated"])},
        "protocol": "full ranking of all items, train items excluded, ks 10 and 20, random embeddings",
        "batch_size": evaluator.batch_size,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": str(evaluator.device),
            "gpu": torch.cuda.get_device_name() if evaluator.device.type == "cuda" else None,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_s": round(load_s, 3),
        "setup_s": round(setup_s, 3),
        "wall_s": round(min(walls), 3),
        "wall_s_all": [round(w, 3) for w in walls],
        "metrics": metrics,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("data", "batch_size", "machine", "setup_s", "wall_s")}, indent=1))
    print(f"evaluate_embeddings wall time: {min(walls):.2f} s (written to {args.out})")


if __name__ == "__main__":
    main()
