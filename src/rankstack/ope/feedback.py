"""The inputs of every single-action estimator, in the array contract of the off-policy literature, validated.

One logged round ``i`` is one shown (item, slot) pair: the logged action ``a_i`` (an index into the action axis),
its 0-based slot ``l_i``, the observed reward ``r_i`` and the logging policy's **per-slot** propensity
``p_i = π_0(a_i | x_i, l_i)`` (rankstack's one propensity convention, :mod:`rankstack.bandits.policy`).
The evaluated policy enters as ``action_dist[i, a, l] = π_e(a | x_i, l)`` [rounds, actions, slots]; a reward
model as ``estimated_rewards[i, a, l] = q̂(x_i, a, l)`` of the same shape. Arrays indexed by round may instead
have one leading row, shared by every round (a context-free policy such as uniform or Bernoulli TS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUM_TOL = 1e-6


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    """The index of the first True entry of ``mask``."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _vector(name: str, values: np.ndarray, n: int | None, dtype: type) -> np.ndarray:
    """``values`` as a 1-D array of ``dtype`` (and length ``n`` when given), or a ValueError naming ``name``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D [rounds], got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} rounds, expected {n} (the length of reward)")
    if dtype is int:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer indices, got dtype {array.dtype}")
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if np.isnan(array).any():
        raise ValueError(f"{name}[{_first_bad(np.isnan(array))[0]}] is NaN")
    return array


def _cube(name: str, values: np.ndarray | None, n: int) -> np.ndarray | None:
    """A [rounds or 1, actions, slots] float array without NaN, or a ValueError naming ``name``."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"{name} must be 3-D [rounds, actions, slots], got shape {array.shape}")
    if array.shape[0] not in (1, n):
        raise ValueError(f"{name} has {array.shape[0]} rounds, expected {n} (or 1, shared by every round)")
    if np.isnan(array).any():
        raise ValueError(f"{name}{list(_first_bad(np.isnan(array)))} is NaN")
    return array


def _check_distribution(name: str, dist: np.ndarray) -> None:
    """Each entry in [0, 1] and each (round, slot) column summing to 1 over the actions."""
    bad = (dist < 0) | (dist > 1 + SUM_TOL)
    if bad.any():
        where = _first_bad(bad)
        raise ValueError(f"{name}{list(where)} = {dist[where]}: probabilities must lie in [0, 1]")
    sums = dist.sum(axis=1)
    off = np.abs(sums - 1) > SUM_TOL
    if off.any():
        r, slot = _first_bad(off)
        raise ValueError(f"{name}[{r}, :, {slot}] sums to {sums[r, slot]:.6g} over the actions, expected 1")


@dataclass(frozen=True)
class OffPolicyData:
    """Logged rounds, the evaluated policy and optional extras; ``__post_init__`` rejects bad input by field and row.

    ``behavior_dist`` (π_0 over every action, [rounds or 1, actions, slots]) is needed by MIPS and by the support
    report; ``action_embedding`` [actions] is a discrete embedding id per action (MIPS marginalises over it).
    """

    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    action_dist: np.ndarray
    estimated_rewards: np.ndarray | None = None
    behavior_dist: np.ndarray | None = None
    action_embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        reward = _vector("reward", self.reward, None, float)
        n = len(reward)
        if n == 0:
            raise ValueError("the log is empty: reward has 0 rounds")
        action = _vector("action", self.action, n, int)
        position = _vector("position", self.position, n, int)
        pscore = _vector("pscore", self.pscore, n, float)
        bad = (pscore <= 0) | (pscore > 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"pscore[{i}] = {pscore[i]}: logged propensities must lie in (0, 1]")
        dist = _cube("action_dist", self.action_dist, n)
        assert dist is not None
        _check_distribution("action_dist", dist)
        _, n_actions, n_slots = dist.shape
        for name, index, size, what in (("action", action, n_actions, "actions"), ("position", position, n_slots,
                                                                                    "slots")):
            out = (index < 0) | (index >= size)
            if out.any():
                i = int(np.argmax(out))
                raise ValueError(f"{name}[{i}] = {index[i]} is outside the evaluated policy's {size} {what}: "
                                 f"the log holds an action the policy never considers")
        q = _cube("estimated_rewards", self.estimated_rewards, n)
        if q is not None and q.shape[1:] != dist.shape[1:]:
            raise ValueError(f"estimated_rewards has shape {q.shape}, expected [rounds, {n_actions}, {n_slots}]")
        behavior = _cube("behavior_dist", self.behavior_dist, n)
        if behavior is not None:
            if behavior.shape[1:] != dist.shape[1:]:
                raise ValueError(f"behavior_dist has shape {behavior.shape}, expected [rounds, {n_actions}, "
                                 f"{n_slots}]")
            _check_distribution("behavior_dist", behavior)
        embedding = self.action_embedding
        if embedding is not None:
            embedding = np.asarray(embedding)
            if embedding.shape != (n_actions,) or not np.issubdtype(embedding.dtype, np.integer):
                raise ValueError(f"action_embedding must be integer ids [{n_actions}], got {embedding.dtype} "
                                 f"{embedding.shape}")
        for field, value in (("reward", reward), ("action", action), ("position", position), ("pscore", pscore),
                             ("action_dist", dist), ("estimated_rewards", q), ("behavior_dist", behavior),
                             ("action_embedding", embedding)):
            object.__setattr__(self, field, value)

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return len(self.reward)

    def rows(self, dist: np.ndarray) -> np.ndarray:
        """Row indices into a [rounds or 1, ...] array for every logged round."""
        return np.arange(self.n_rounds) if len(dist) == self.n_rounds else np.zeros(self.n_rounds, dtype=np.int64)

    def at_slot(self, cube: np.ndarray) -> np.ndarray:
        """``cube[i, :, l_i]`` for every round: [rounds, actions]."""
        return cube[self.rows(cube), :, self.position]

    def target_pscore(self) -> np.ndarray:
        """π_e(a_i | x_i, l_i) per round."""
        return self.action_dist[self.rows(self.action_dist), self.action, self.position]

    def weights(self) -> np.ndarray:
        """The importance weights w_i = π_e(a_i | x_i, l_i) / p_i."""
        return self.target_pscore() / self.pscore

    def take(self, index: np.ndarray) -> OffPolicyData:
        """The rounds at ``index`` (a bootstrap resample); shared one-row arrays stay shared."""

        def pick(cube: np.ndarray | None) -> np.ndarray | None:
            return cube if cube is None or len(cube) != self.n_rounds else cube[index]

        return OffPolicyData(
            reward=self.reward[index], action=self.action[index], position=self.position[index],
            pscore=self.pscore[index], action_dist=pick(self.action_dist),  # type: ignore[arg-type]
            estimated_rewards=pick(self.estimated_rewards), behavior_dist=pick(self.behavior_dist),
            action_embedding=self.action_embedding,
        )


def support_report(data: OffPolicyData) -> dict[str, float | int | None]:
    """Overlap diagnostics: weight statistics, how often the logged action is one the target never shows at its slot,
    and (with ``behavior_dist``) the target's mass on actions the logger never shows — IPS-type estimators miss it."""
    w = data.weights()
    uncovered = None
    if data.behavior_dist is not None:
        pi_e = data.at_slot(data.action_dist)
        pi_b = data.at_slot(data.behavior_dist)
        uncovered = float(np.mean(np.sum(pi_e * (pi_b <= 0), axis=1)))
    return {
        "rounds": data.n_rounds,
        "mean_weight": float(w.mean()),
        "max_weight": float(w.max()),
        "effective_sample_size": float(w.sum() ** 2 / max(float(np.sum(w**2)), 1e-300)),
        "target_never_shows_logged_action": float(np.mean(w == 0)),
        "uncovered_target_mass": uncovered,
    }
