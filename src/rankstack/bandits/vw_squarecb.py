"""Vowpal Wabbit's SquareCB (``--cb_explore_adf --squarecb``) behind the learning-policy signature: the peer
that ``rankstack bandits compare`` runs on the same stream as ours (needs the ``peers`` extra).

Examples (VW's action-dependent-features text format): a shared line ``shared |s f0:x_0 … f20:x_20`` with the
round's features x_r, and one line per available arm ``|i a<id>``; ``-q si`` crosses them, so VW's regressor
is θ_aᵀx_r per arm — the same disjoint linear form as our ``SquareCB``'s ridge (x holds a constant, so every
arm has its own intercept). Cost = −click (VW minimises cost).

Slates, per slot without replacement (the conditional contextual bandit reduction): slot l asks VW for its
pmf over the pool arms not yet on the slate, draws one with our ``rng``, and records that pmf value
q_l = P(a_l | x, a_1..a_{l−1}). ``update`` gives VW one labelled example per shown slot: the same shared line,
the arms that were available at that slot, and ``0:−click:q_l`` on the chosen one. Learning is in the same
mini-batches as ours (choose a batch, then learn it), so both see feedback equally late.

Propensities in the project's convention (per-slot marginals, ``docs/bandits.md``): slot 1's is q_1 exactly;
a later slot's marginal sums over the earlier picks and has no closed form, so it is a Monte-Carlo estimate
over ``propensity_samples`` re-runs of the slot-by-slot draw (VW's pmf is deterministic given its weights);
NaN when 0. The conditional q_l that VW learns from is kept in ``last_conditional``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankstack.bandits.learning import BanditContext, need_context
from rankstack.bandits.policy import Slates, check_pool

EXTRA_HINT = "vw_squarecb needs the vowpalwabbit package: pip install 'rankstack[peers]' (vowpalwabbit==9.11.9)"


def _vowpalwabbit() -> Any:
    """The vowpalwabbit module, or an ImportError naming the extra."""
    try:
        import vowpalwabbit
        from vowpalwabbit import pyvw
    except ImportError as exc:  # pragma: no cover - exercised only where the extra is absent
        raise ImportError(EXTRA_HINT) from exc
    return vowpalwabbit, pyvw


class VWSquareCB:
    """VW ``--cb_explore_adf --squarecb -q si`` over ``n_arms`` arms, slates slot by slot without replacement."""

    def __init__(self, n_arms: int, gamma_scale: float = 10.0, gamma_exponent: float = 0.5, seed: int = 0,
                 propensity_samples: int = 0, extra_args: str = "") -> None:
        vowpalwabbit, pyvw = _vowpalwabbit()
        self.args = (f"--cb_explore_adf --squarecb --gamma_scale {gamma_scale} --gamma_exponent {gamma_exponent} "
                     f"-q si --quiet --random_seed {seed} {extra_args}").strip()
        self.vw = vowpalwabbit.Workspace(self.args)
        self._pyvw = pyvw
        self._cb = pyvw.LabelType.CONTEXTUAL_BANDIT
        self.actions = [pyvw.Example(self.vw, f"|i a{a}", self._cb) for a in range(n_arms)]
        self.propensity_samples = propensity_samples
        self._pending: list[tuple[Any, list[list[int]]]] = []
        self.last_conditional = np.empty((0, 0))

    def _shared(self, x: np.ndarray) -> Any:
        text = "shared |s " + " ".join(f"f{i}:{v:.7g}" for i, v in enumerate(x) if v != 0)
        return self._pyvw.Example(self.vw, text, self._cb)

    def pmf(self, shared: Any, arms: list[int]) -> np.ndarray:
        """VW's pmf over ``arms`` (in that order) for the shared example."""
        return np.asarray(self.vw.predict([shared, *(self.actions[a] for a in arms)]), dtype=np.float64)

    def _draw(self, shared: Any, arms: list[int], k: int, u: np.ndarray
              ) -> tuple[list[int], list[float], list[list[int]]]:
        """Slot-by-slot draws with the uniforms ``u`` [k]: chosen indices into ``arms``, q_l, available sets."""
        left = list(range(len(arms)))
        picks: list[int] = []
        q: list[float] = []
        avail: list[list[int]] = []
        for slot in range(min(k, len(arms))):
            p = self.pmf(shared, [arms[i] for i in left])
            j = min(int(np.searchsorted(np.cumsum(p), u[slot] * p.sum(), side="right")), len(left) - 1)
            avail.append([arms[i] for i in left])
            picks.append(left.pop(j))
            q.append(float(p[j]))
        return picks, q, avail

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """One slate per round, slot by slot from VW's pmf; marginal per-slot propensities (above)."""
        pool, scores = check_pool(pool, scores, k)
        x = need_context(context, "vw_squarecb").rounds
        width = min(k, pool.shape[1])
        positions = np.full((len(pool), width), -1)
        items = np.full((len(pool), width), -1)
        prop = np.full((len(pool), width), np.nan)
        cond = np.full((len(pool), width), np.nan)
        u = rng.random((len(pool), width))
        self._pending = []
        for r in range(len(pool)):
            valid = np.flatnonzero(pool[r] >= 0)
            arms = [int(a) for a in pool[r, valid]]
            shared = self._shared(x[r])
            picks, q, avail = self._draw(shared, arms, width, u[r])
            n = len(picks)
            positions[r, :n] = valid[picks]
            items[r, :n] = pool[r, valid[picks]]
            cond[r, :n] = q
            if n:
                prop[r, 0] = q[0]
            if self.propensity_samples > 0 and n > 1:
                hits = np.zeros(n - 1)
                for _ in range(self.propensity_samples):
                    again, _q, _a = self._draw(shared, arms, n, rng.random(n))
                    hits += np.asarray(again[1:]) == np.asarray(picks[1:])
                prop[r, 1:n] = hits / self.propensity_samples
            self._pending.append((shared, avail))
        self.last_conditional = cond
        return Slates(items, positions, prop)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """One VW learn per shown slot of the last ``choose``: its available arms, cost −click, prob q_l."""
        if len(self._pending) != len(slates.items):
            raise ValueError("vw_squarecb.update must follow the choose of the same slates")
        rewards = np.asarray(rewards, dtype=np.float64)
        for r, (shared, avail) in enumerate(self._pending):
            for slot, arms in enumerate(avail):
                chosen = int(slates.items[r, slot])
                label = f"0:{-rewards[r, slot]:g}:{self.last_conditional[r, slot]:.9g} |i a{chosen}"
                labelled = self._pyvw.Example(self.vw, label, self._cb)
                self.vw.learn([shared, *(labelled if a == chosen else self.actions[a] for a in arms)])
        self._pending = []
