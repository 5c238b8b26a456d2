"""What ``rankstack ope`` evaluates: logs by dataset name, file or state store, and policies by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.data.loaders import REGISTRY, load_dataset
from rankstack.ope.bandit_log import BanditLog, bandit_log_from_dataset, bandit_log_from_events
from rankstack.ope.open_bandit_policies import open_bandit_bts_action_dist, uniform_action_dist
from rankstack.ope.service_log import is_state_store, read_service_events

PolicyMaker = Callable[[BanditLog, int, int], np.ndarray]


def _uniform(log: BanditLog, n_sim: int, seed: int) -> np.ndarray:
    """Uniform over the log's action axis at every slot."""
    return uniform_action_dist(log.n_actions, log.n_slots)


def _bts(log: BanditLog, n_sim: int, seed: int) -> np.ndarray:
    """ZOZOTOWN's Bernoulli TS (the ``all`` campaign's prior) on the Open Bandit Dataset's 80 items."""
    if log.n_actions != 80 or not np.array_equal(log.items.astype(np.int64), np.arange(80)):
        raise ValueError("the Bernoulli TS policy of the Open Bandit Dataset needs its 80 items (ids 0..79) as actions")
    return open_bandit_bts_action_dist(log.n_slots, n_sim=n_sim, seed=seed)


# name → the policy: the Open Bandit logs' own logging policies (their logs give the ground truth) and uniform
POLICIES: dict[str, PolicyMaker] = {"open-bandit": _uniform, "open-bandit-bts": _bts, "uniform": _uniform}
# logs whose logging policy is known exactly for every round (MIPS and the support report need π_0 over every action);
# the Bernoulli TS log is not one: its production posterior moved during the week, so its propensities are per row
LOGGERS: dict[str, PolicyMaker] = {"open-bandit": _uniform}
# item feature used as MIPS's discrete embedding when the log is an Open Bandit log (chosen before any run)
DEFAULT_EMBEDDING = {"open-bandit": "item_feature_1", "open-bandit-bts": "item_feature_1"}


@dataclass(frozen=True)
class LoadedLog:
    """A log, its name, its item feature table's raw columns (for embeddings) and whether it is a known policy's."""

    name: str
    log: BanditLog
    item_columns: dict[str, np.ndarray]


def load_log(spec: str, data_dir: Path | None = None, items: np.ndarray | None = None) -> LoadedLog:
    """A registered dataset by name, a canonical event-log file or folder, or a service state store (.db);
    ``items`` fixes the action axis (default: the logged items, or the dataset's catalogue)."""
    path = Path(spec)
    if spec not in REGISTRY and is_state_store(path):
        return LoadedLog(path.name, bandit_log_from_events(read_service_events(path), source=str(path), items=items),
                         {})
    dataset = load_dataset(spec, data_dir)
    log = bandit_log_from_dataset(dataset, items=items)
    columns: dict[str, np.ndarray] = {}
    if dataset.item_features is not None:
        table = dataset.item_features.with_columns(
            dataset.item_map.to_external(dataset.item_features.get_column("item_id").to_numpy()).alias("item_id"))
        order = {v: i for i, v in enumerate(table.get_column("item_id").to_list())}
        rows = [order[v] for v in log.items.tolist()] if all(v in order for v in log.items.tolist()) else None
        if rows is not None:
            columns = {c: table.get_column(c).to_numpy()[rows] for c in table.columns if c != "item_id"}
    return LoadedLog(dataset.name, log, columns)


def embedding_ids(values: np.ndarray) -> np.ndarray:
    """Integer ids of a column's distinct values: the discrete embedding MIPS marginalises over."""
    return np.unique(values.astype(str), return_inverse=True)[1].astype(np.int64)


def policy_dist(name: str, log: BanditLog, *, n_sim: int, seed: int) -> np.ndarray:
    """The named policy's action distribution on ``log``'s actions and slots."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}")
    return POLICIES[name](log, n_sim, seed)
