"""Judge rankings with the simulator's ground truth: candidate sets for logged requests, slates, true value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS
from rankstack.simulation.world import Requests


@dataclass(frozen=True)
class CandidateSets:
    """``n`` requests with ``c`` candidates each: simulator requests, items [n, c] (simulator ids), their
    earlier exposures [n, c], and ``table`` (n·c rows, request-major) shaped like an impression table.
    """

    requests: Requests
    items: np.ndarray
    exposures: np.ndarray
    table: pl.DataFrame

    def matrix(self, scores: np.ndarray) -> np.ndarray:
        """Per-row scores of ``table`` reshaped to [n, c]."""
        return np.asarray(scores, dtype=np.float64).reshape(self.items.shape)


def candidate_sets(
    sim: MarketplaceSimulator, dataset: Dataset, impressions: pl.DataFrame, requests: pl.DataFrame,
    *, n_candidates: int = 50, seed: int = 0,
) -> CandidateSets:
    """Uniformly drawn distinct candidates (items known to ``dataset``) for each logged request in ``requests``
    (rows with request_id, timestamp, user_id, device, placement, hour; internal ids).

    Exposures count the pair's impressions in ``impressions`` (the full log) before the request.
    """
    known = dataset.item_map.to_external(np.arange(dataset.n_items)).to_numpy().astype(np.int64)
    if n_candidates > len(known):
        raise ValueError(f"n_candidates {n_candidates} exceeds the {len(known)} known items")
    rng = np.random.default_rng(seed)
    n = requests.height
    pick = np.argsort(rng.random((n, len(known))), axis=1)[:, :n_candidates]
    items_internal = pick.astype(np.int64)
    items = known[items_internal]
    users_internal = requests.get_column("user_id").to_numpy().astype(np.int64)
    req = simulator_requests(sim, dataset, requests)
    exposures = _earlier_exposures(impressions, users_internal, items_internal, requests.get_column("timestamp"),
                                   dataset.n_items)
    table = requests.select("request_id", "timestamp", "user_id", "device", "placement", "hour")
    table = table.select(pl.all().repeat_by(n_candidates).explode()).with_columns(
        pl.Series("item_id", items_internal.ravel()),
        pl.lit(0, dtype=pl.Int64).alias("position"),
        pl.Series("exposures", exposures.ravel().astype(np.float64)),
    )
    for key, features in (("user_id", dataset.user_features), ("item_id", dataset.item_features)):
        if features is not None:
            table = table.join(features, on=key, how="left", maintain_order="left")
    return CandidateSets(req, items, exposures, table)


def simulator_requests(sim: MarketplaceSimulator, dataset: Dataset, requests: pl.DataFrame) -> Requests:
    """The simulator's view of logged requests (rows with user_id (internal), timestamp, device, placement, hour)."""
    users_internal = requests.get_column("user_id").to_numpy().astype(np.int64)
    users = dataset.user_map.to_external(users_internal).to_numpy().astype(np.int64)
    c = sim.config
    start = np.datetime64(c.start.replace(tzinfo=None), "us")
    elapsed = (requests.get_column("timestamp").to_numpy() - start).astype("timedelta64[us]").astype(np.float64)
    return Requests(
        users=users, t_frac=elapsed / (c.days * 86_400e6), hour=requests.get_column("hour").to_numpy(),
        device=np.array([DEVICES.index(d) for d in requests.get_column("device").to_list()]),
        placement=np.array([PLACEMENTS.index(p) for p in requests.get_column("placement").to_list()]),
    )


def earlier_exposures(impressions: pl.DataFrame, users: np.ndarray, items: np.ndarray, times: pl.Series,
                      n_items: int) -> np.ndarray:
    """For each (users[r], items[r, j]) (internal ids): the pair's impressions in the log strictly before times[r]."""
    return _earlier_exposures(impressions, users, items, times, n_items)


def _earlier_exposures(impressions: pl.DataFrame, users: np.ndarray, items: np.ndarray, times: pl.Series,
                       n_items: int) -> np.ndarray:
    """For each (users[r], items[r, j]): impressions of that pair strictly before times[r]."""
    log_keys = (impressions.get_column("user_id").to_numpy().astype(np.int64) * n_items
                + impressions.get_column("item_id").to_numpy().astype(np.int64))
    query_keys = (users[:, None] * n_items + items).ravel()
    log_t = impressions.get_column("timestamp").cast(pl.Int64).to_numpy()
    query_t = np.repeat(times.cast(pl.Int64).to_numpy(), items.shape[1])
    ranks = np.unique(np.concatenate([log_t, query_t]), return_inverse=True)[1].astype(np.int64)
    span = int(ranks.max(initial=0)) + 1
    composite = np.sort(log_keys * span + ranks[: len(log_t)])
    first = np.searchsorted(composite, query_keys * span, side="left")
    before = np.searchsorted(composite, query_keys * span + ranks[len(log_t):], side="left")
    return (before - first).reshape(items.shape)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first (ties broken by lower index)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def slate_metrics(sim: MarketplaceSimulator, cands: CandidateSets, scores: np.ndarray, k: int) -> dict[str, float]:
    """True expected clicks, conversions and revenue per 1,000 impressions of the top-``k`` slates by ``scores``
    [n, c], and NDCG@k with gain = true P(click) of each candidate in the first slot.
    """
    pick = top_k(scores, k)
    slates = np.take_along_axis(cands.items, pick, axis=1)
    exposures = np.take_along_axis(cands.exposures, pick, axis=1)
    totals = sim.expected_value(cands.requests, slates, exposures).per_request()
    n_imp = slates.size
    gains = sim.world.click_probability(
        cands.requests, cands.items, np.zeros_like(cands.items), cands.exposures)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(gains, pick, axis=1) * discounts).sum(1)
    ideal = (-np.sort(-gains, axis=1)[:, :k] * discounts).sum(1)
    return {
        "revenue_per_mille": 1000 * float(totals["revenue"].sum()) / n_imp,
        "clicks_per_mille": 1000 * float(totals["clicks"].sum()) / n_imp,
        "conversions_per_mille": 1000 * float(totals["conversions"].sum()) / n_imp,
        "ndcg": float(np.mean(dcg / np.maximum(ideal, 1e-12))),
    }
