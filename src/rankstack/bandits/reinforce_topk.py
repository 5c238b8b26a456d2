"""Top-K off-policy-corrected REINFORCE (Chen et al., "Top-K Off-Policy Correction for a REINFORCE Recommender
System", WSDM 2019), over a bilinear softmax policy.

Policy: π(a | x) = softmax_a(xᵀ W y_a) over the catalogue (x: the round's state, y_a: the item's features; with
y = one-hot items it is a free logit per item). From logged (x, a, r, β(a | x)) the gradient ascended is

    Σ min(π(a|x) / β(a|x), c) · λ_K(π(a|x)) · r · ∇_W log π(a|x),   λ_K(π) = K(1 − π)^{K−1},
    ∇_W log π(a|x) = x ⊗ (y_a − Σ_b π(b|x) y_b)

(c: the weight cap; K = 1 gives plain off-policy REINFORCE; ``correction=False`` drops the ratio and λ_K,
the uncorrected REINFORCE that imitates the logging policy's preferences). When the log has no propensities,
β is a second softmax of the same form fitted to the logged actions by maximum likelihood (the paper's
separately learned behaviour head). The trained policy serves K items by the exploration ``Softmax`` over its
logits, so the shown slates carry exact per-slot propensities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from rankstack.bandits.exploration import Softmax
from rankstack.bandits.learning import BanditContext, need_context
from rankstack.bandits.policy import Slates, check_pool


@dataclass
class BilinearSoftmax:
    """π(a | x) = softmax(xᵀ W Yᵀ) with W [d_x, d_y], trained by Adam on a weighted log-likelihood."""

    weights: np.ndarray

    def logits(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """xᵀ W y_a for every round and arm: [rounds, n_arms]."""
        return (x @ self.weights) @ arms.T

    def probs(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """π(· | x) [rounds, n_arms]."""
        return softmax(self.logits(x, arms), axis=1)

    def grad(self, x: np.ndarray, arms: np.ndarray, actions: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Σ_i g_i ∇_W log π(a_i | x_i) = Xᵀ diag(g) (Y[a] − P Y)."""
        p = self.probs(x, arms)
        return x.T @ (g[:, None] * (arms[actions] - p @ arms))


def _adam(model: BilinearSoftmax, step: object, epochs: int, lr: float, n: int, batch: int,
          rng: np.random.Generator) -> None:
    """Gradient ascent with Adam (Kingma & Ba, 2015) on mini-batches; ``step(index)`` returns the gradient."""
    m = np.zeros_like(model.weights)
    v = np.zeros_like(model.weights)
    t = 0
    for _ in range(epochs):
        for part in np.array_split(rng.permutation(n), max(1, n // batch)):
            t += 1
            g = step(part) / len(part)  # type: ignore[operator]
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            model.weights += lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)


def fit_behaviour(x: np.ndarray, arms: np.ndarray, actions: np.ndarray, *, epochs: int = 20, lr: float = 0.05,
                  batch: int = 4096, seed: int = 0) -> BilinearSoftmax:
    """β(a | x): the same softmax form fitted to the logged actions by maximum likelihood."""
    model = BilinearSoftmax(np.zeros((x.shape[1], arms.shape[1])))
    _adam(model, lambda i: model.grad(x[i], arms, actions[i], np.ones(len(i))), epochs, lr, len(x), batch,
          np.random.default_rng(seed))
    return model


class ReinforceTopK:
    """A softmax recommender trained by top-K off-policy-corrected REINFORCE; serves ``Softmax`` slates."""

    def __init__(self, dim_rounds: int, dim_arms: int, top_k: int = 1, cap: float = 10.0, correction: bool = True,
                 epochs: int = 30, lr: float = 0.05, batch: int = 4096, seed: int = 0) -> None:
        if top_k < 1 or cap <= 0:
            raise ValueError(f"top_k must be >= 1 and cap > 0, got top_k={top_k}, cap={cap}")
        self.model = BilinearSoftmax(np.zeros((dim_rounds, dim_arms)))
        self.top_k, self.cap, self.correction = top_k, cap, correction
        self.epochs, self.lr, self.batch, self.seed = epochs, lr, batch, seed

    def weights(self, pi: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """min(π/β, c)·λ_K(π) with λ_K(π) = K(1 − π)^{K−1}; 1 without the correction."""
        if not self.correction:
            return np.ones_like(pi)
        return np.minimum(pi / np.maximum(beta, 1e-12), self.cap) * self.top_k * (1 - pi) ** (self.top_k - 1)

    def fit(self, x: np.ndarray, arms: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            propensity: np.ndarray | None = None) -> ReinforceTopK:
        """Train from logged (x [n, d_x], action [n], reward [n], β(action | x) [n] or None → learned β)."""
        actions = np.asarray(actions)
        if propensity is None:
            beta_model = fit_behaviour(x, arms, actions, seed=self.seed)
            propensity = beta_model.probs(x, arms)[np.arange(len(x)), actions]
        beta = np.asarray(propensity, dtype=np.float64)
        rewards = np.asarray(rewards, dtype=np.float64)
        model = self.model

        def step(i: np.ndarray) -> np.ndarray:
            pi = model.probs(x[i], arms)[np.arange(len(i)), actions[i]]
            return model.grad(x[i], arms, actions[i], self.weights(pi, beta[i]) * rewards[i])

        _adam(model, step, self.epochs, self.lr, len(x), self.batch, np.random.default_rng(self.seed))
        return self

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """k items by systematic sampling ∝ π, shown in logit order, with exact per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        ctx = need_context(context, "reinforce_topk")
        logits = np.take_along_axis(self.model.logits(ctx.rounds, ctx.arms), np.maximum(pool, 0), axis=1)
        return Softmax(1.0, order="score").choose(pool, np.where(pool >= 0, logits, 0.0), k, rng)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Trained offline: serving does not update it."""
        return None
