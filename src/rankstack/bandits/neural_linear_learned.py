"""NeuralLinear over a LEARNED representation (Riquelme, Tucker & Snoek, ICLR 2018): a small network trained on
the observed (context, arm, reward) gives φ; Thompson sampling runs on a Bayesian linear regression over φ.

Network: [x_r, y_a, e_a] → Linear–ReLU → Linear–ReLU = φ(r, a) (``width`` units) → Linear → r̂, with e_a a learned
embedding of the arm id (so arms with equal features can differ), trained by Adam on the squared error over the
last ``buffer`` observations. Every ``retrain_every`` rounds the network is retrained (warm start, ``epochs``
passes) and the posterior is rebuilt from the buffer under the new φ, as in the paper; between retrains the
posterior is updated in closed form. Posterior over the last layer (the fixed-φ ``NeuralLinear``'s):
A = λI + Σ φφᵀ, b = Σ rφ, θ ~ N(A⁻¹b, v²A⁻¹). A round draws θ̃_r and shows the top-k of θ̃_rᵀφ(r, a); per-slot
propensities are a Monte-Carlo estimate over ``propensity_samples`` further draws (NaN when 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rankstack.bandits.learning import BanditContext, mc_action_dist, need_context, sampled_slates, shown
from rankstack.bandits.policy import Slates, check_pool


class _Net(nn.Module):
    """[x, y, e_a] → φ (two ReLU layers) → r̂."""

    def __init__(self, n_arms: int, dim_in: int, width: int, embed: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_arms, embed)
        nn.init.normal_(self.embed.weight, std=0.01)
        self.first = nn.Linear(dim_in + embed, width)
        self.second = nn.Linear(width, width)
        self.head = nn.Linear(width, 1)

    def phi(self, xy: torch.Tensor, arms: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.second(torch.relu(self.first(torch.cat([xy, self.embed(arms)], dim=-1)))))

    def phi_pairs(self, x: torch.Tensor, y: torch.Tensor, arms: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """φ for every round × pool entry without building the [rounds·pool, d] inputs: the first layer splits
        into a per-round part W_x x and a per-arm part W_y y_a + W_e e_a + b."""
        first, second = self.first, self.second
        dx = x.shape[1]
        w = first.weight
        per_round = x @ w[:, :dx].T
        per_arm = y @ w[:, dx : dx + y.shape[1]].T + self.embed(arms) @ w[:, dx + y.shape[1] :].T + first.bias
        hidden = (per_round[:, None, :] + per_arm[idx]).relu_()
        return second(hidden).relu_()

    def forward(self, xy: torch.Tensor, arms: torch.Tensor) -> torch.Tensor:
        return self.head(self.phi(xy, arms)).squeeze(-1)


class LearnedNeuralLinear:
    """Thompson sampling on a Bayesian last layer over a representation learned from the observed rewards."""

    def __init__(self, n_arms: int, dim_rounds: int, dim_arms: int, width: int = 32, embed: int = 8,
                 v: float = 0.1, ridge: float = 1.0, retrain_every: int = 10_000, epochs: int = 2,
                 buffer: int = 200_000, lr: float = 3e-3, batch: int = 1024, seed: int = 0,
                 propensity_samples: int = 0) -> None:
        if v <= 0 or ridge <= 0 or retrain_every < 1 or epochs < 1 or buffer < 1:
            raise ValueError(f"v and ridge must be > 0 and retrain_every, epochs, buffer >= 1, got v={v}, "
                             f"ridge={ridge}, retrain_every={retrain_every}, epochs={epochs}, buffer={buffer}")
        self.v, self.ridge, self.width = v, ridge, width
        self.retrain_every, self.epochs, self.buffer, self.batch = retrain_every, epochs, buffer, batch
        self.propensity_samples = propensity_samples
        self.gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.net = _Net(n_arms, dim_rounds + dim_arms, width, embed)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.xy = np.empty((0, dim_rounds + dim_arms), dtype=np.float32)
        self.arms = np.empty(0, dtype=np.int64)
        self.rewards = np.empty(0, dtype=np.float32)
        self.rounds_since = retrain_every  # train at the first update
        self.retrains = 0
        self._posterior(np.empty((0, width)), np.empty(0))

    def _posterior(self, phi: np.ndarray, r: np.ndarray, add: bool = False) -> None:
        """A = λI + ΦᵀΦ, b = Φᵀr (``add``: on top of the current ones), then θ̂ and the draw factor."""
        if not add:
            self.a, self.b = self.ridge * np.eye(self.width), np.zeros(self.width)
        self.a = self.a + phi.T @ phi
        self.b = self.b + phi.T @ r
        a_inv = np.linalg.inv(self.a)
        self.theta = a_inv @ self.b
        self.chol = np.linalg.cholesky(self.v**2 * (a_inv + a_inv.T) / 2)

    def phi(self, xy: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """φ for paired inputs [n, d_x + d_y] and arm ids [n] → [n, width] (float64, for the posterior)."""
        with torch.no_grad():
            out = self.net.phi(torch.as_tensor(xy, dtype=torch.float32), torch.as_tensor(arms, dtype=torch.int64))
        return out.numpy().astype(np.float64)

    def _pairs(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """φ(r, pool[r, j]) [rounds, pool, width] (float32: the scores only rank)."""
        with torch.no_grad():
            out = self.net.phi_pairs(torch.as_tensor(context.rounds, dtype=torch.float32),
                                     torch.as_tensor(context.arms, dtype=torch.float32),
                                     torch.arange(len(context.arms)), torch.as_tensor(np.maximum(pool, 0)))
        return out.numpy()

    def _sampler(self, pool: np.ndarray, context: BanditContext, rng: np.random.Generator
                 ) -> Callable[[], np.ndarray]:
        phi = self._pairs(pool, context)

        def draw() -> np.ndarray:
            theta = self.theta + rng.standard_normal((len(pool), self.width)) @ self.chol.T
            return np.matmul(phi, theta.astype(np.float32)[:, :, None])[:, :, 0]

        return draw

    def mean(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """Posterior-mean scores θ̂ᵀφ(r, a) [rounds, pool]."""
        return self._pairs(pool, context) @ self.theta.astype(np.float32)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Top-k of one posterior draw per round; Monte-Carlo per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        draw = self._sampler(pool, need_context(context, "neural_linear_learned"), rng)
        return sampled_slates(pool, draw, k, self.propensity_samples)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
        """Monte-Carlo π(a, l) over ``propensity_samples`` draws."""
        pool, scores = check_pool(pool, scores, k)
        draw = self._sampler(pool, need_context(context, "neural_linear_learned"), rng or np.random.default_rng(0))
        return mc_action_dist(draw, pool, k, self.propensity_samples)

    def train(self) -> float:
        """Retrain the network on the buffer (``epochs`` passes, warm start); the last epoch's mean loss."""
        xy = torch.as_tensor(self.xy)
        arms = torch.as_tensor(self.arms)
        r = torch.as_tensor(self.rewards)
        loss_sum: Any = 0.0
        for _ in range(self.epochs):
            loss_sum, order = 0.0, torch.randperm(len(r), generator=self.gen)
            for part in order.split(self.batch):
                self.opt.zero_grad()
                loss = ((self.net(xy[part], arms[part]) - r[part]) ** 2).mean()
                loss.backward()
                self.opt.step()
                loss_sum += loss.item() * len(part)
        self.retrains += 1
        return float(loss_sum) / max(len(r), 1)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Add the shown slots to the buffer; retrain and rebuild the posterior every ``retrain_every`` rounds,
        else update it in closed form."""
        ctx = need_context(context, "neural_linear_learned")
        rows, arms, r = shown(pool, slates, rewards)
        xy = np.hstack([ctx.rounds[rows], ctx.arms[arms]]).astype(np.float32)
        self.xy = np.concatenate([self.xy, xy])[-self.buffer :]
        self.arms = np.concatenate([self.arms, arms.astype(np.int64)])[-self.buffer :]
        self.rewards = np.concatenate([self.rewards, r.astype(np.float32)])[-self.buffer :]
        self.rounds_since += len(slates.items)
        if self.rounds_since >= self.retrain_every:
            self.rounds_since = 0
            self.train()
            self._posterior(self.phi(self.xy, self.arms), self.rewards.astype(np.float64))
        else:
            self._posterior(self.phi(xy, arms), r, add=True)
