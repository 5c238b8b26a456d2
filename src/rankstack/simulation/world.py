"""The simulated marketplace: latent users and items, observable features, and ground-truth probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from rankstack.simulation.simulator_config import DEVICES, PLACEMENTS, SimulatorConfig


@dataclass(frozen=True)
class Requests:
    """A batch of requests: who asked, when (fraction of the run in [0, 1)), and the context."""

    users: np.ndarray
    t_frac: np.ndarray
    hour: np.ndarray
    device: np.ndarray
    placement: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    def take(self, index: np.ndarray | slice) -> Requests:
        """The sub-batch at ``index``."""
        return Requests(self.users[index], self.t_frac[index], self.hour[index], self.device[index],
                        self.placement[index])


@dataclass(frozen=True)
class Marketplace:
    """Ground truth of one seeded world. Latent arrays are hidden from models; features are observable.

    attraction logit(u, i, ctx, t) = a0 + b_i + drift·τ_i·(2t − 1) + s·⟨z_u, w_i⟩/√d
                                     + D[device, cat_i] + A_cat·sin(2π·hour/24 + φ_cat)
    conversion logit(u, i, ctx)    = c0 + c_i + s_c·⟨z_u, v_i⟩/√d − γ·log(payout_i / median)
                                     + dev_cvr[device] + reg_cvr[region_u]
    """

    config: SimulatorConfig
    user_latent: np.ndarray
    user_features: np.ndarray
    user_segment: np.ndarray
    user_region: np.ndarray
    user_activity: np.ndarray
    user_main_device: np.ndarray
    item_latent: np.ndarray
    item_features: np.ndarray
    item_conv_latent: np.ndarray
    item_bias: np.ndarray
    item_trend: np.ndarray
    item_conv_bias: np.ndarray
    item_category: np.ndarray
    item_advertiser: np.ndarray
    item_payout: np.ndarray
    device_category: np.ndarray
    hour_amplitude: np.ndarray
    hour_phase: np.ndarray
    device_conversion: np.ndarray
    region_conversion: np.ndarray

    @classmethod
    def generate(cls, config: SimulatorConfig, rng: np.random.Generator) -> Marketplace:
        """Draw every latent and observable attribute from ``rng`` (same rng state → same world)."""
        c = config
        d, n_u, n_i, n_c = c.latent_dim, c.n_users, c.n_items, c.n_categories
        z = rng.standard_normal((n_u, d))
        proj = rng.standard_normal((d, c.n_user_features)) / np.sqrt(d)
        feats = z @ proj + c.user_feature_noise * rng.standard_normal((n_u, c.n_user_features))
        segment = np.argmax(z @ rng.standard_normal((d, c.n_segments)), axis=1)
        centres = rng.standard_normal((n_c, d))
        conv_centres = rng.standard_normal((n_c, d))
        category = rng.integers(0, n_c, n_i)
        spread = c.item_spread
        w = (centres[category] + spread * rng.standard_normal((n_i, d))) / np.sqrt(1 + spread**2)
        v = (conv_centres[category] + 0.3 * rng.standard_normal((n_i, d))) / np.sqrt(1.09)
        item_proj = rng.standard_normal((2 * d, c.n_item_features)) / np.sqrt(2 * d)
        item_noise = c.item_feature_noise * rng.standard_normal((n_i, c.n_item_features))
        item_feats = np.hstack([w, v]) @ item_proj + item_noise
        cat_payout = c.payout_median * np.exp(c.payout_sigma * rng.standard_normal(n_c))
        payout = np.round(cat_payout[category] * np.exp(0.3 * c.payout_sigma * rng.standard_normal(n_i)), 2)
        return cls(
            config=c,
            user_latent=z,
            user_features=feats,
            user_segment=segment.astype(np.int64),
            user_region=rng.integers(0, c.n_regions, n_u),
            user_activity=np.exp(c.user_activity_sigma * rng.standard_normal(n_u)),
            user_main_device=rng.choice(len(DEVICES), size=n_u, p=c.device_probs),
            item_latent=w,
            item_features=item_feats,
            item_conv_latent=v,
            item_bias=c.item_bias_std * rng.standard_normal(n_i),
            item_trend=rng.standard_normal(n_i),
            item_conv_bias=c.conversion_item_std * rng.standard_normal(n_i),
            item_category=category.astype(np.int64),
            item_advertiser=rng.integers(0, c.n_advertisers, n_i),
            item_payout=np.maximum(payout, 0.5),
            device_category=c.context_effect_std * rng.standard_normal((len(DEVICES), n_c)),
            hour_amplitude=c.context_effect_std * np.abs(rng.standard_normal(n_c)),
            hour_phase=rng.uniform(0, 2 * np.pi, n_c),
            device_conversion=np.array([-0.3, 0.2, 0.0]),
            region_conversion=0.2 * rng.standard_normal(c.n_regions),
        )

    @property
    def n_users(self) -> int:
        """Number of simulated users."""
        return len(self.user_latent)

    @property
    def n_items(self) -> int:
        """Number of simulated items."""
        return len(self.item_latent)

    def _item_context(self, req: Requests, items: np.ndarray) -> np.ndarray:
        """Item bias with drift plus device × category and hour-of-day terms; ``items`` is [n] or [n, k]."""
        c = self.config
        extra = (slice(None),) + (None,) * (items.ndim - 1)
        cat = self.item_category[items]
        t = (2.0 * req.t_frac - 1.0)[extra]
        hour = (2 * np.pi * req.hour / 24.0)[extra]
        return (
            self.item_bias[items]
            + c.drift * self.item_trend[items] * t
            + self.device_category[req.device[extra], cat]
            + self.hour_amplitude[cat] * np.sin(hour + self.hour_phase[cat])
        )

    def attraction_logit(self, req: Requests, items: np.ndarray) -> np.ndarray:
        """True attraction logit of ``items`` ([n] or [n, k]) for each request (no position, no fatigue)."""
        c = self.config
        z = self.user_latent[req.users]
        w = self.item_latent[items]
        dot = np.einsum("nd,nkd->nk", z, w) if items.ndim == 2 else np.einsum("nd,nd->n", z, w)
        scale = c.affinity_scale / np.sqrt(c.latent_dim)
        return c.base_click_logit + scale * dot + self._item_context(req, items)

    def attraction_logit_all(self, req: Requests) -> np.ndarray:
        """True attraction logits of every item: [n, n_items]."""
        c = self.config
        scale = c.affinity_scale / np.sqrt(c.latent_dim)
        items = np.broadcast_to(np.arange(self.n_items), (len(req), self.n_items))
        return c.base_click_logit + scale * (self.user_latent[req.users] @ self.item_latent.T) + self._item_context(
            req, items
        )

    def examination(self, positions: np.ndarray, placement: np.ndarray) -> np.ndarray:
        """P(examine slot) = (1 + position)^(−decay[placement]); ``placement`` broadcasts over slots."""
        decay = np.array([self.config.position_decay[p] for p in PLACEMENTS])[placement]
        if positions.ndim == 2 and decay.ndim == 1:
            decay = decay[:, None]
        return np.power(1.0 + positions, -decay)

    def click_probability(
        self, req: Requests, items: np.ndarray, positions: np.ndarray, exposures: np.ndarray | None = None
    ) -> np.ndarray:
        """P(click | user, item, context, position, exposures) = exam · σ(attraction) · fatigue^exposures."""
        p = self.examination(positions, req.placement) * expit(self.attraction_logit(req, items))
        if exposures is not None:
            p = p * np.power(self.config.fatigue, exposures)
        return p

    def conversion_probability(self, req: Requests, items: np.ndarray) -> np.ndarray:
        """P(conversion | click, user, item, context) = σ(conversion logit)."""
        c = self.config
        extra = (slice(None),) + (None,) * (items.ndim - 1)
        z = self.user_latent[req.users]
        v = self.item_conv_latent[items]
        dot = np.einsum("nd,nkd->nk", z, v) if items.ndim == 2 else np.einsum("nd,nd->n", z, v)
        logit = (
            c.base_conversion_logit
            + self.item_conv_bias[items]
            + c.conversion_affinity_scale / np.sqrt(c.latent_dim) * dot
            - c.payout_elasticity * np.log(self.item_payout[items] / c.payout_median)
            + self.device_conversion[req.device][extra]
            + self.region_conversion[self.user_region[req.users]][extra]
        )
        return expit(logit)
