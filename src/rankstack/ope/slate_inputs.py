"""The array contract of the slate estimators: the log (what the logging policy showed and what it earned) and the
evaluated policy's probabilities of the logged choices, each validated with errors that name field, round and slot.

Conventions (the ``rankstack.bandits`` one): a round shows ``K`` slots; ``positions[i, k]`` is the index of the
action (pool entry) shown at slot ``k`` of round ``i``; ``action_dist[i, a, k]`` = P(action ``a`` at slot ``k``
| round ``i``); the logged ``pscore`` is the per-slot propensity μ(a_k at k | x), what ``Policy.choose`` returns
and the simulator logs. Cascade (prefix) probabilities are μ(a_1, …, a_k | x), the chance of the slate's first
``k`` slots exactly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np

from rankstack.errors import DataValidationError

LOG = "slate log"
TARGET = "evaluated policy"
_TOL = 1e-6


class SupportWarning(UserWarning):
    """The evaluated policy puts mass where the logging policy never goes: no estimator here can see it."""


def _first(bad: np.ndarray) -> tuple[int, int]:
    """(round, slot) of the first True entry of ``bad`` [n, K]."""
    first = np.argwhere(bad)[0]
    return int(first[0]), int(first[1])


def _finite(source: str, name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float array of ``shape`` (-1 = any size) without NaN or infinity."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, arr.shape, strict=True)):
        want = ", ".join("any" if s == -1 else str(s) for s in shape)
        raise DataValidationError(source, f"expected shape [{want}], got {list(arr.shape)}", column=name)
    if arr.size and not np.isfinite(arr.sum()):  # one pass: NaN and ±inf make the sum non-finite
        bad = ~np.isfinite(arr)
        if bad.any():
            first = np.argwhere(bad)[0]
            slot = f" (index {tuple(int(i) for i in first[1:])})" if len(first) > 1 else ""
            raise DataValidationError(source, f"{arr[tuple(first)]} is not a finite number{slot}", column=name,
                                      row=int(first[0]))
    return arr


def _probability(source: str, name: str, value: object, shape: tuple[int, ...], *, zero_ok: bool) -> np.ndarray:
    """A finite array of ``shape`` in [0, 1] (``zero_ok``) or (0, 1]."""
    arr = _finite(source, name, value, shape)
    lowest, highest = (float(arr.min()), float(arr.max())) if arr.size else (1.0, 1.0)
    if (lowest > 0 or (zero_ok and lowest == 0)) and highest <= 1:  # the common case, without a mask per check
        return arr
    low = arr < 0 if zero_ok else arr <= 0
    for bad, what in ((low, "must be > 0 (a logged choice had probability 0?)" if not zero_ok else "must be ≥ 0"),
                      (arr > 1 + _TOL, "must be ≤ 1")):
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            at = f" at slot {first[-1]}" + (f", action {first[1]}" if len(first) == 3 else "")
            raise DataValidationError(source, f"probability {arr[first]}{at} {what}", column=name, row=first[0])
    return np.minimum(arr, 1.0)


def _non_increasing(source: str, name: str, cascade: np.ndarray) -> None:
    """Prefix probabilities can only fall as the prefix grows."""
    bad = cascade[:, 1:] > cascade[:, :-1] * (1 + _TOL) + 1e-12
    if bad.any():
        row, _ = _first(bad)
        raise DataValidationError(source, f"prefix probabilities must not grow with the prefix, got {cascade[row]}",
                                  column=name, row=row)


def _same(source: str, name: str, got: np.ndarray, want: np.ndarray, what: str) -> None:
    bad = ~np.isclose(got, want, rtol=1e-5, atol=1e-9)
    if bad.any():
        row, slot = _first(bad)
        raise DataValidationError(source, f"{got[row, slot]} at slot {slot} disagrees with {what} ({want[row, slot]})",
                                  column=name, row=row)


@dataclass(frozen=True)
class SlateLog:
    """What the logging policy μ showed and earned: ``rewards`` [n, K] per slot (the slate reward is their sum),
    ``positions`` [n, K] action indices, ``pscore`` [n, K] = μ(a_k at k | x_i) and optionally ``pscore_cascade``
    [n, K] = μ(a_1..a_k | x_i) (standard and reward-interaction IPS, cascade-DR need it)."""

    rewards: np.ndarray
    positions: np.ndarray
    pscore: np.ndarray
    pscore_cascade: np.ndarray | None = None

    def __post_init__(self) -> None:
        rewards = _finite(LOG, "rewards", self.rewards, (-1, -1))
        n, k = rewards.shape
        if n == 0 or k == 0:
            raise DataValidationError(LOG, f"needs at least one round and one slot, got rewards of shape {[n, k]}",
                                      column="rewards")
        raw = np.asarray(self.positions)
        if raw.shape != (n, k):
            raise DataValidationError(LOG, f"expected shape [{n}, {k}] (the rewards'), got {list(raw.shape)}",
                                      column="positions")
        if not np.issubdtype(raw.dtype, np.integer):
            raise DataValidationError(LOG, f"action indices must be integers, got dtype {raw.dtype}",
                                      column="positions")
        if (raw < 0).any():
            row, slot = _first(raw < 0)
            raise DataValidationError(LOG, f"negative action index at slot {slot} (PAD?): slates must be full",
                                      column="positions", row=row)
        pscore = _probability(LOG, "pscore", self.pscore, (n, k), zero_ok=False)
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "positions", raw.astype(np.int64))
        object.__setattr__(self, "pscore", pscore)
        if self.pscore_cascade is not None:
            cascade = _probability(LOG, "pscore_cascade", self.pscore_cascade, (n, k), zero_ok=False)
            _non_increasing(LOG, "pscore_cascade", cascade)
            _same(LOG, "pscore_cascade", cascade[:, :1], pscore[:, :1], "pscore at slot 0, the same event")
            object.__setattr__(self, "pscore_cascade", cascade)

    @property
    def n_rounds(self) -> int:
        """Rounds (slates) in the log."""
        return int(self.rewards.shape[0])

    @property
    def slots(self) -> int:
        """Slots per slate (K)."""
        return int(self.rewards.shape[1])

    def cascade(self, estimator: str) -> np.ndarray:
        """``pscore_cascade``, or an error saying that ``estimator`` needs it."""
        if self.pscore_cascade is None:
            raise ValueError(f"{estimator} needs the logging policy's prefix probabilities: pass "
                             "SlateLog(pscore_cascade=...) (slate_policies.uniform_cascade for a uniform logger)")
        return self.pscore_cascade


@dataclass(frozen=True)
class SlateTarget:
    """The evaluated policy π at the logged choices, every array [n, K]: ``pscore`` = π(a_k at k | x),
    ``inclusion`` = Σ_l π(a_k at l | x), ``cascade`` = π(a_1..a_k | x); for cascade-DR ``q_logged`` =
    Q̂_k(x, a_1..a_k) and ``q_baseline`` = E_{a∼π(·|x, a_1..a_{k−1})} Q̂_k(x, a_1..a_{k−1}, a); for independent DR
    ``q_marginal`` = E_{a∼π(· at k|x)} Q̂_k(x, a) (a per-slot model under π's marginal law); ``support_deficit``
    [n] = the share of π's (item, slot) mass where μ is 0. Build it with :func:`slate_target`."""

    pscore: np.ndarray | None = None
    inclusion: np.ndarray | None = None
    cascade: np.ndarray | None = None
    q_logged: np.ndarray | None = None
    q_baseline: np.ndarray | None = None
    support_deficit: np.ndarray | None = None
    q_marginal: np.ndarray | None = None

    def need(self, name: str, estimator: str) -> np.ndarray:
        """The field ``name``, or an error saying which argument of :func:`slate_target` provides it."""
        value = getattr(self, name)
        if value is None:
            source = {"pscore": "action_dist", "inclusion": "action_dist", "cascade": "cascade",
                      "q_logged": "reward_model and conditional_dist (or action_dist)",
                      "q_baseline": "reward_model and conditional_dist",
                      "q_marginal": "reward_model and action_dist"}[name]
            raise ValueError(f"{estimator} needs the evaluated policy's {name}: pass {source} to slate_target")
        return np.asarray(value)

    def deficit(self) -> float:
        """Mean support deficit over rounds (NaN when unknown), with a :class:`SupportWarning` when positive."""
        if self.support_deficit is None:
            return float("nan")
        value = float(np.mean(self.support_deficit))
        if value > 0:
            rounds = int((self.support_deficit > 0).sum())
            warnings.warn(f"the evaluated policy puts {value:.3%} of its (item, slot) mass where the logging policy "
                          f"never goes ({rounds} rounds): every estimator here misses that part of its value",
                          SupportWarning, stacklevel=3)
        return value

    def check(self, log: SlateLog) -> None:
        """Every field present fits ``log`` ([n, K], support_deficit [n]), is finite, and probabilities lie in [0, 1]
        (inclusion in [0, K]): a target built for another log, or by hand, is refused before any estimate."""
        n, k = log.n_rounds, log.slots
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in ("pscore", "cascade"):
                _probability(TARGET, f.name, value, (n, k), zero_ok=True)
            elif f.name == "support_deficit":
                _finite(TARGET, f.name, value, (n,))
            else:
                arr = _finite(TARGET, f.name, value, (n, k))
                if f.name == "inclusion" and (arr.min() < 0 or arr.max() > k * (1 + _TOL)):
                    row, slot = _first((arr < 0) | (arr > k * (1 + _TOL)))
                    raise DataValidationError(TARGET, f"inclusion probability {arr[row, slot]} at slot {slot} must "
                                                      f"lie in [0, K = {k}]", column=f.name, row=row)

    @classmethod
    def concat(cls, parts: list[SlateTarget]) -> SlateTarget:
        """Targets of consecutive chunks of one log as one target (a field is kept only where every part has it)."""
        merged: dict[str, np.ndarray | None] = {}
        for f in fields(cls):
            values = [getattr(p, f.name) for p in parts]
            merged[f.name] = np.concatenate(values) if all(v is not None for v in values) else None
        return cls(**merged)


def slate_target(
    log: SlateLog, *, action_dist: np.ndarray | None = None, cascade: np.ndarray | None = None,
    reward_model: np.ndarray | None = None, conditional_dist: np.ndarray | None = None,
    logging_dist: np.ndarray | None = None,
) -> SlateTarget:
    """The evaluated policy's probabilities at ``log``'s choices, from the arrays of the literature.

    ``action_dist`` [n, m, K]: π(a at k | x_i), each slot a distribution over the m actions; ``cascade`` [n, K]:
    π(a_1..a_k | x_i) of the logged prefixes; ``reward_model`` [n, m, K]: Q̂_k(x_i, a_1..a_{k−1}, a) (logged
    prefix, any action a at slot k) with ``conditional_dist`` [n, m, K]: π(a at k | x_i, logged a_1..a_{k−1})
    (cascade-DR), and/or with ``action_dist`` for a per-slot model Q̂_k(x_i, a) (independent DR);
    ``logging_dist`` [n, m, K]: μ's action_dist, only to measure the support deficit.
    """
    n, k = log.n_rounds, log.slots
    rows, slots = np.arange(n)[:, None], np.arange(k)[None, :]
    out: dict[str, np.ndarray] = {}
    if action_dist is not None:
        dist = checked_distribution("action_dist", action_dist, n, k)
        check_considered(log, dist.shape[1], "action_dist")
        out["pscore"] = dist[rows, log.positions, slots]
        out["inclusion"] = dist.sum(axis=2)[rows, log.positions]
        if logging_dist is not None:
            mu = checked_distribution("logging_dist", logging_dist, n, k, source=LOG)
            if mu.shape != dist.shape:
                raise DataValidationError(LOG, f"expected shape {list(dist.shape)} (action_dist's), got "
                                               f"{list(mu.shape)}", column="logging_dist")
            out["support_deficit"] = np.where(mu == 0, dist, 0.0).sum(axis=(1, 2)) / k
    elif logging_dist is not None:
        raise ValueError("logging_dist measures the support deficit of action_dist: pass action_dist too")
    if cascade is not None:
        prefix = _probability(TARGET, "cascade", cascade, (n, k), zero_ok=True)
        _non_increasing(TARGET, "cascade", prefix)
        if "pscore" in out:
            _same(TARGET, "cascade", prefix[:, :1], out["pscore"][:, :1], "action_dist at slot 0, the same event")
        out["cascade"] = prefix
    if conditional_dist is not None and reward_model is None:
        raise ValueError("cascade-DR's reward model needs both reward_model and conditional_dist [n, actions, K]")
    if reward_model is not None and conditional_dist is None and action_dist is None:
        raise ValueError("a reward model needs both reward_model and conditional_dist [n, actions, K] (cascade-DR) "
                         "or action_dist (independent DR)")
    if reward_model is not None and action_dist is not None:
        marginal = np.asarray(action_dist, dtype=np.float64)
        q = _finite(TARGET, "reward_model", reward_model, marginal.shape)
        out["q_logged"] = q[rows, log.positions, slots]
        out["q_marginal"] = (marginal * q).sum(axis=1)
    if reward_model is not None and conditional_dist is not None:
        cond = checked_distribution("conditional_dist", conditional_dist, n, k)
        q = _finite(TARGET, "reward_model", reward_model, cond.shape)
        check_considered(log, cond.shape[1], "conditional_dist")
        out["q_logged"] = q[rows, log.positions, slots]
        out["q_baseline"] = (cond * q).sum(axis=1)
        if "cascade" in out:
            step = cond[rows, log.positions, slots]
            implied = np.cumprod(step, axis=1)
            _same(TARGET, "conditional_dist", implied, out["cascade"], "cascade (their product over the prefix)")
    if not out:
        raise ValueError("slate_target needs at least one of action_dist, cascade, reward_model + conditional_dist")
    return SlateTarget(**out)


def checked_distribution(name: str, value: object, n: int, k: int, source: str = TARGET) -> np.ndarray:
    """[n, m, K] probabilities whose every slot sums to 1 over the m actions."""
    dist = _probability(source, name, value, (n, -1, k), zero_ok=True)
    sums = dist.sum(axis=1)
    bad = np.abs(sums - 1.0) > 1e-6
    if bad.any():
        row, slot = _first(bad)
        raise DataValidationError(source, f"slot {slot}'s probabilities sum to {sums[row, slot]:.6g}, not 1 "
                                          "(slates must be full)", column=name, row=row)
    return dist


def check_considered(log: SlateLog, m: int, name: str) -> None:
    """Every logged action must be one the evaluated policy could show: an index below its m actions."""
    bad = log.positions >= m
    if bad.any():
        row, slot = _first(bad)
        raise DataValidationError(
            TARGET, f"the log shows action {int(log.positions[row, slot])} at slot {slot}, which the evaluated "
                    f"policy never considers ({name} has {m} actions): the logs and the policy disagree on the "
                    "action space", column=name, row=row)
