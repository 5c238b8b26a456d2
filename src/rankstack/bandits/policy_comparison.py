"""Run learning policies on one simulated stream and judge them with the simulator's truth.

Every policy sees the same requests (users, context) and the same click / conversion uniforms: a shown item
at slot l of round t is clicked when u_click[t, l] < its true P(click), so policies differ only by their
choices. Policies learn in mini-batches of ``batch`` rounds: choose for the whole batch, then update with its
clicks (1,000 rounds per update by default). Regret is the expected-click regret against the oracle that knows
the true probabilities: per round, Σ_l exam(l)·(the oracle's l-th best σ(attraction)·fatigue^n) minus the
chosen slate's true expected clicks (exposures n as at the start of the batch for the oracle).
``reinforce_topk`` is trained first on a uniform-policy log of the same world, then run on the stream without
updates.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import numpy as np
from scipy.special import expit

from rankstack.bandits.bernoulli_ts import BernoulliTS
from rankstack.bandits.exploration import Uniform
from rankstack.bandits.learning import BanditContext
from rankstack.bandits.lints import LinTS
from rankstack.bandits.linucb import LinUCB
from rankstack.bandits.linucb_hybrid import HybridLinUCB
from rankstack.bandits.logistic_ts import LogisticTS
from rankstack.bandits.neural_linear import NeuralLinear
from rankstack.bandits.policy import Slates
from rankstack.bandits.reinforce_topk import ReinforceTopK
from rankstack.bandits.ridge_epsilon_greedy import RidgeEpsilonGreedy
from rankstack.bandits.squarecb import SquareCB
from rankstack.simulation.simulator import MarketplaceSimulator, _ExposureCounter
from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS, SimulatorConfig
from rankstack.simulation.world import Requests

LOG_ROUNDS = 50_000
VW_GAMMA_SCALE = 1000.0  # chosen on seed 1, 20k rounds, from {10 (VW default), 1000}: regret 23.3k vs 19.0k
HYBRID_ALPHA = 0.01  # chosen on seed 1, 40k rounds: regret 31.0k (0.01), 32.1k (0.05), 33.7k (0.2)
LEARNED_V = 0.1


@dataclass(frozen=True)
class Stream:
    """The shared stream: requests, contexts and the click / conversion uniforms [rounds, k]."""

    sim: MarketplaceSimulator
    requests: Requests
    context: BanditContext
    click_u: np.ndarray
    conversion_u: np.ndarray


class _Uniform:
    """The uniform policy with the learning-policy signature (it learns nothing)."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        return Uniform().choose(pool, scores, k, rng)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        return None


def builders(n_arms: int, dx: int, dy: int, samples: int) -> dict[str, Callable[[], object]]:
    """Policy name → constructor for a catalogue of ``n_arms`` with round / arm feature sizes ``dx`` / ``dy``."""
    return {
        "uniform": _Uniform,
        "epsilon_greedy": lambda: RidgeEpsilonGreedy(n_arms, dx, epsilon=0.1),
        "bernoulli_ts": lambda: BernoulliTS(n_arms, propensity_samples=samples),
        "linucb": lambda: LinUCB(n_arms, dx, alpha=0.05),
        "linucb_hybrid": lambda: HybridLinUCB(n_arms, dx, dy, alpha=HYBRID_ALPHA),
        "lints": lambda: LinTS(n_arms, dx, v=0.1, propensity_samples=samples),
        "neural_linear": lambda: NeuralLinear(dx, dy, v=0.1, propensity_samples=samples),
        "squarecb": lambda: SquareCB(n_arms, dx, gamma=1e5),
        "logistic_ts": lambda: LogisticTS(dx, dy, propensity_samples=samples),
        "neural_linear_learned": lambda: _learned_neural_linear(n_arms, dx, dy, samples),
        "vw_squarecb": lambda: _vw_squarecb(n_arms, samples),
    }


def _learned_neural_linear(n_arms: int, dx: int, dy: int, samples: int) -> object:
    """NeuralLinear over a learned representation (imports torch only when asked for)."""
    from rankstack.bandits.neural_linear_learned import LearnedNeuralLinear

    return LearnedNeuralLinear(n_arms, dx, dy, v=LEARNED_V, propensity_samples=samples)


def _vw_squarecb(n_arms: int, samples: int) -> object:
    """Vowpal Wabbit's SquareCB peer, imported only when asked for (the ``peers`` extra)."""
    from rankstack.bandits.vw_squarecb import VWSquareCB

    return VWSquareCB(n_arms, gamma_scale=VW_GAMMA_SCALE, propensity_samples=samples)


POLICY_NAMES = (*builders(2, 1, 1, 0), "reinforce_topk")


def train_reinforce(stream: Stream, seed: int, log_rounds: int = LOG_ROUNDS) -> ReinforceTopK:
    """Top-K corrected REINFORCE (K = the slate size) trained on a uniform-policy log of ``log_rounds`` other
    requests of the same world (clicks drawn from the truth without fatigue; β = the logged 1/|catalogue|).

    Only clicked impressions are kept: with reward 0 an impression's gradient is 0.
    """
    sim, w = stream.sim, stream.sim.world
    k = stream.click_u.shape[1]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    req = sim.draw_requests(log_rounds, rng)
    pool = np.broadcast_to(np.arange(w.n_items), (log_rounds, w.n_items))
    slates = Uniform().choose(pool, np.zeros(pool.shape), k, rng)
    p_click = w.click_probability(req, slates.items, np.broadcast_to(np.arange(k), slates.items.shape))
    rows, slots = np.nonzero(rng.random(p_click.shape) < p_click)
    x = round_features(sim, req)[rows]
    policy = ReinforceTopK(x.shape[1], stream.context.arms.shape[1], top_k=k, seed=seed)
    return policy.fit(x, stream.context.arms, slates.items[rows, slots], np.ones(len(rows)),
                      slates.propensity[rows, slots])


def check_names(names: list[str]) -> list[str]:
    """The names, or a ValueError naming the unknown one."""
    for name in names:
        if name not in POLICY_NAMES:
            raise ValueError(f"unknown policy {name!r}; expected one of {', '.join(POLICY_NAMES)}")
    if not names:
        raise ValueError("no policies given")
    if "vw_squarecb" in names and importlib.util.find_spec("vowpalwabbit") is None:
        from rankstack.bandits.vw_squarecb import EXTRA_HINT

        raise ValueError(EXTRA_HINT)
    return names


def round_features(sim: MarketplaceSimulator, req: Requests) -> np.ndarray:
    """x_r = [user features, device one-hot, placement one-hot, sin / cos of the hour, 1]."""
    w = sim.world
    angle = 2 * np.pi * req.hour / 24.0
    return np.hstack([
        w.user_features[req.users], np.eye(len(DEVICES))[req.device], np.eye(len(PLACEMENTS))[req.placement],
        np.sin(angle)[:, None], np.cos(angle)[:, None], np.ones((len(req), 1)),
    ])


def make_stream(rounds: int, seed: int, k: int = 5, n_users: int = 10_000, n_items: int = 500) -> Stream:
    """The world of ``seed`` and ``rounds`` requests with their shared uniforms."""
    sim = MarketplaceSimulator(SimulatorConfig(seed=seed, n_users=n_users, n_items=n_items,
                                               n_impressions=rounds * k, slate_size=k))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 18]))
    req = sim.draw_requests(rounds, rng)
    arms = np.hstack([sim.world.item_features, np.ones((n_items, 1))])
    return Stream(sim, req, BanditContext(round_features(sim, req), arms),
                  rng.random((rounds, k)), rng.random((rounds, k)))


def run_policy(stream: Stream, policy: object, seed: int, batch: int = 1000,
               advance: Callable[[int], None] | None = None, trace: list[list[float]] | None = None
               ) -> dict[str, float]:
    """Run ``policy`` on the stream in mini-batches; CTR, revenue per 1,000 impressions and regret.

    ``trace``, when given, receives [rounds done, clicks, revenue, regret] (cumulative) after every batch.
    """
    w = stream.sim.world
    rounds, k = stream.click_u.shape
    counter = _ExposureCounter(w.n_users, w.n_items)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    pool_all = np.broadcast_to(np.arange(w.n_items), (batch, w.n_items))
    exam_k = np.arange(k)
    clicks = revenue = regret = expected = 0.0
    t0 = perf_counter()
    for start in range(0, rounds, batch):
        index = np.arange(start, min(start + batch, rounds))
        req = stream.requests.take(index)
        ctx = BanditContext(stream.context.rounds[index], stream.context.arms)
        pool = pool_all[: len(index)]
        slates = policy.choose(pool, np.zeros(pool.shape), k, rng, context=ctx)  # type: ignore[attr-defined]
        items = slates.items
        positions = np.broadcast_to(exam_k, items.shape)
        before = counter.dense.reshape(w.n_users, w.n_items)[req.users] if counter.dense is not None else 0
        exposures = counter.observe(req.users, items)
        p_click = w.click_probability(req, items, positions, exposures)
        click = stream.click_u[index] < p_click
        conversion = click & (stream.conversion_u[index] < w.conversion_probability(req, items))
        best = -np.sort(-(expit(w.attraction_logit_all(req)) * np.power(w.config.fatigue, before)), axis=1)[:, :k]
        oracle = (w.examination(positions, req.placement) * best).sum()
        clicks += click.sum()
        revenue += np.where(conversion, w.item_payout[items], 0.0).sum()
        expected += p_click.sum()
        regret += oracle - p_click.sum()
        policy.update(pool, slates, click.astype(np.float64), ctx)  # type: ignore[attr-defined]
        if trace is not None:
            trace.append([float(index[-1] + 1), float(clicks), float(revenue), float(regret)])
        if advance is not None:
            advance(len(index))
    n_imp = rounds * k
    return {"ctr": clicks / n_imp, "revenue_per_1000": 1000 * revenue / n_imp, "regret": float(regret),
            "expected_ctr": expected / n_imp, "wall_s": round(perf_counter() - t0, 2)}


def build_policy(name: str, stream: Stream, seed: int, propensity_samples: int = 0) -> object:
    """A fresh policy ``name`` for the stream's world (``reinforce_topk`` trained first on a uniform log)."""
    if name == "reinforce_topk":
        return train_reinforce(stream, seed)
    make = builders(stream.sim.world.n_items, stream.context.rounds.shape[1], stream.context.arms.shape[1],
                    propensity_samples)
    return make[name]()


def compare(names: list[str], rounds: int, seed: int, *, batch: int = 1000, propensity_samples: int = 0,
            advance: Callable[[str, int], None] | None = None) -> dict[str, object]:
    """Run every named policy on the same stream; the ``{"policies": {name: metrics}}`` report."""
    check_names(names)
    if rounds < 1 or batch < 1:
        raise ValueError(f"rounds and batch must be >= 1, got rounds={rounds}, batch={batch}")
    stream = make_stream(rounds, seed)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        step = (lambda n, name=name: advance(name, n)) if advance is not None else None
        if step is not None:
            step(0)  # the policy starts now
        policy = build_policy(name, stream, seed, propensity_samples)
        out[name] = run_policy(stream, policy, seed, batch, step)
    return {"policies": out, "rounds": rounds, "seed": seed, "batch_rounds": batch, "slate_size": 5,
            "propensity_samples": propensity_samples}
