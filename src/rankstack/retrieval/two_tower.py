"""Two-tower retrieval: in-batch sampled softmax with logQ correction, cold-start items from features."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field
from torch.nn import functional as F

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.evaluator import Evaluator
from rankstack.progress import new_progress
from rankstack.retrieval.base import CandidateSource, SourceConfig
from rankstack.retrieval.features import FeatureEncoder
from rankstack.retrieval.lightgcn import holdout
from rankstack.retrieval.two_tower_net import StreamingFrequency, TwoTowerNet


class TwoTowerConfig(SourceConfig):
    """``temperature`` τ scales cosines; ``id_dropout`` trains the item tower to work from features alone."""

    embedding_dim: int = Field(default=64, ge=1)
    hidden_dim: int = Field(default=256, ge=1)
    history_len: int = Field(default=50, ge=1)
    temperature: float = Field(default=0.05, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=1024, ge=2)
    uniform_negatives: int = Field(default=0, ge=0)
    logq_alpha: float = Field(default=0.01, gt=0, le=1)
    id_dropout: float = Field(default=0.2, ge=0, le=1)
    item_features: list[str] | None = None
    user_features: list[str] | None = None
    validation_ratio: float = Field(default=0.0, ge=0, lt=1)
    eval_every: int = Field(default=1, ge=1)
    patience: int = Field(default=3, ge=1)
    eval_k: int = Field(default=20, ge=1)
    amp: bool = False
    seed: int = 0
    device: str = "auto"


def flatten_sequences(seqs: list[np.ndarray], drop: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """(items, users, start of each event's user run) of the time-ordered events, minus pairs in ``drop``."""
    users = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs]).astype(np.int64)
    items = np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, np.int64)
    if drop is not None and drop.nnz:
        coo = drop.tocoo()
        n = drop.shape[1]
        keep = ~np.isin(users * n + items, coo.row.astype(np.int64) * n + coo.col)
        users, items = users[keep], items[keep]
    starts = np.searchsorted(users, users, side="left")
    return items, users, starts


def causal_history(flat_items: torch.Tensor, pos: torch.Tensor, starts: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` items before each position within its user's run: [len(pos), n], −1 pads (oldest first)."""
    idx = pos.unsqueeze(1) - torch.arange(n, 0, -1, device=pos.device).unsqueeze(0)
    valid = idx >= starts.unsqueeze(1)
    return torch.where(valid, flat_items[idx.clamp_min(0)], torch.full_like(idx, -1))


class TwoTower(CandidateSource):
    """score(u, i) = ⟨u, v_i⟩ (cosine). Loss: softmax over the batch's items (plus optional uniform ones),
    logit_uj = ⟨u, v_j⟩/τ − log q_j, q_j the expected count of j among the sampled items (logQ correction)."""

    name = "two-tower"
    config_class = TwoTowerConfig
    config: TwoTowerConfig

    def fit(self, dataset: Dataset) -> TwoTower:
        """Encode features, train the towers, then embed every user and item (cold items from features)."""
        cfg = self.config
        x = dataset.interaction_matrix(binary=True)
        self.train_ = x
        self.device_ = dev = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.item_encoder_ = FeatureEncoder("item_id", cfg.item_features).fit(dataset.item_features)
        self.user_encoder_ = FeatureEncoder("user_id", cfg.user_features).fit(dataset.user_features)
        self.item_feats_ = {k: v.to(dev) for k, v in self.item_encoder_.encode(dataset.item_features,
                                                                               x.shape[1]).items()}
        self.user_feats_ = {k: v.to(dev) for k, v in self.user_encoder_.encode(dataset.user_features,
                                                                               x.shape[0]).items()}
        self.net_ = TwoTowerNet(x.shape[0], x.shape[1], cfg.embedding_dim, cfg.hidden_dim, self.item_encoder_,
                                self.user_encoder_).to(dev)
        seqs = dataset.sequences()
        val = None
        if cfg.validation_ratio > 0:
            graph, val = holdout(x, cfg.validation_ratio, cfg.seed)
        self.history_: list[dict[str, float]] = []
        self._train(seqs, x if val is None else graph, val)
        return self

    def _histories(self, seqs: list[np.ndarray], drop: sp.csr_matrix | None) -> torch.Tensor:
        """Last ``history_len`` items of each user's sequence: [n_users, N], −1 pads."""
        items, users, _ = flatten_sequences(seqs, drop)
        ends = np.searchsorted(users, np.arange(len(seqs)), side="right")
        flat = torch.from_numpy(items)
        pos = torch.from_numpy(ends)
        begin = torch.from_numpy(np.searchsorted(users, np.arange(len(seqs)), side="left"))
        return causal_history(flat, pos, begin, self.config.history_len).to(self.device_)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.amp and self.device_.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train(self, seqs: list[np.ndarray], graph: sp.csr_matrix, val: sp.csr_matrix | None) -> None:
        cfg, dev, net = self.config, self.device_, self.net_
        n_items = graph.shape[1]
        items_np, users_np, starts_np = flatten_sequences(seqs, val)
        flat, users, starts = (torch.from_numpy(a).to(dev) for a in (items_np, users_np, starts_np))
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        freq = StreamingFrequency(n_items, cfg.batch_size, cfg.logq_alpha, dev)
        gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        evaluator = Evaluator(graph, val, ks=[cfg.eval_k], device=dev) if val is not None else None
        item_count = torch.from_numpy(np.asarray(graph.sum(axis=0)).ravel()).to(dev)
        best, stale, best_state, t0 = -1.0, 0, None, time.perf_counter()
        n = flat.numel()
        with new_progress() as progress:
            task = progress.add_task("two-tower", total=cfg.epochs)
            for epoch in range(1, cfg.epochs + 1):
                net.train()
                perm = torch.randperm(n, device=dev, generator=gen)
                total = 0.0
                for start in range(0, n, cfg.batch_size):
                    pos = perm[start : start + cfg.batch_size]
                    loss = self._batch_loss(flat, users, starts, pos, freq, gen)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(pos)
                row: dict[str, float] = {"epoch": epoch, "wall_s": time.perf_counter() - t0, "loss": total / n}
                if evaluator is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    u_vec, i_vec = self._embed_all(self._histories(seqs, val), item_count)
                    metrics = evaluator.evaluate_embeddings(u_vec, i_vec)
                    row.update({f"val_{k}": v for k, v in metrics.items() if k.startswith(("recall", "ndcg"))})
                    score = metrics[f"recall@{cfg.eval_k}"]
                    if score > best:
                        best, stale = score, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        stale += 1
                    progress.update(task, description=f"two-tower val recall@{cfg.eval_k} {score:.4f}")
                self.history_.append(row)
                progress.update(task, advance=1)
                if evaluator is not None and stale >= cfg.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.item_counts_ = torch.from_numpy(np.asarray(self.train_.sum(axis=0)).ravel()).to(dev)  # type: ignore[union-attr]
        self.histories_ = self._histories(seqs, None)
        self.user_vectors_, self.item_vectors_ = self._embed_all(self.histories_, self.item_counts_)

    def _batch_loss(self, flat: torch.Tensor, users: torch.Tensor, starts: torch.Tensor, pos: torch.Tensor,
                    freq: StreamingFrequency, gen: torch.Generator) -> torch.Tensor:
        """Sampled softmax over in-batch (and uniform) items with logQ correction; same-item logits masked."""
        cfg, net = self.config, self.net_
        n_items = net.item_id.num_embeddings
        items, u = flat[pos], users[pos]
        hist = causal_history(flat, pos, starts[pos], cfg.history_len)
        freq.update(items)
        keep = (torch.rand(items.shape, device=items.device, generator=gen) >= cfg.id_dropout).float()
        with self._autocast():
            uv = net.users(u, hist, self.user_feats_)
            iv = net.items(items, keep, self.item_feats_)
            logits = (uv @ iv.T).float() / cfg.temperature - freq.log_q(items).unsqueeze(0)
            same = items.unsqueeze(0) == items.unsqueeze(1)
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float("-inf"))
            if cfg.uniform_negatives:
                neg = torch.randint(0, n_items, (cfg.uniform_negatives,), device=items.device, generator=gen)
                nv = net.items(neg, torch.ones_like(neg, dtype=torch.float32), self.item_feats_)
                neg_logits = (uv @ nv.T).float() / cfg.temperature - np.log(cfg.uniform_negatives / n_items)
                neg_logits = neg_logits.masked_fill(items.unsqueeze(1) == neg.unsqueeze(0), float("-inf"))
                logits = torch.cat([logits, neg_logits], 1)
        return F.cross_entropy(logits, torch.arange(len(items), device=items.device))

    @torch.no_grad()
    def _embed_all(self, histories: torch.Tensor, item_count: torch.Tensor, batch: int = 8192
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """All user and item vectors; items without training interactions use their features only."""
        net, dev = self.net_, self.device_
        net.eval()
        n_users, n_items = net.user_id.num_embeddings, net.item_id.num_embeddings
        ids = torch.arange(n_items, device=dev)
        items = torch.cat([net.items(ids[s : s + batch], (item_count[s : s + batch] > 0).float(), self.item_feats_)
                           for s in range(0, n_items, batch)])
        uids = torch.arange(n_users, device=dev)
        users = torch.cat([net.users(uids[s : s + batch], histories[s : s + batch], self.user_feats_)
                           for s in range(0, n_users, batch)])
        return users.float(), items.float()

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """⟨u, v_i⟩ for every item."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_vectors_.device)
        return self.user_vectors_[users] @ self.item_vectors_.T

    def item_vectors(self) -> torch.Tensor:
        """Item vectors (unit norm; index them with a VectorIndex: inner product = cosine)."""
        return self.item_vectors_

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """User vectors [users, d] (the queries of a VectorIndex over ``item_vectors``)."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_vectors_.device)
        return self.user_vectors_[users]

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Network weights, features, histories and the final vectors."""
        tensors = {f"net.{k}": v for k, v in self.net_.state_dict().items()}
        tensors.update({f"item_feat.{k}": v for k, v in self.item_feats_.items()})
        tensors.update({f"user_feat.{k}": v for k, v in self.user_feats_.items()})
        tensors.update(histories=self.histories_, item_counts=self.item_counts_, user_vectors=self.user_vectors_,
                       item_vectors=self.item_vectors_)
        meta = {"item_encoder": self.item_encoder_.describe(), "user_encoder": self.user_encoder_.describe(),
                "history": self.history_}
        return tensors, meta

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Rebuild the network from the saved encoders and load every tensor on the configured device."""
        cfg = self.config
        self.device_ = dev = resolve_device(cfg.device)
        self.item_encoder_ = FeatureEncoder.from_description(meta["item_encoder"])
        self.user_encoder_ = FeatureEncoder.from_description(meta["user_encoder"])
        n_users, n_items = tensors["user_vectors"].shape[0], tensors["item_vectors"].shape[0]
        self.net_ = TwoTowerNet(n_users, n_items, cfg.embedding_dim, cfg.hidden_dim, self.item_encoder_,
                                self.user_encoder_).to(dev)
        self.net_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.item_feats_ = {k[10:]: v.to(dev) for k, v in tensors.items() if k.startswith("item_feat.")}
        self.user_feats_ = {k[10:]: v.to(dev) for k, v in tensors.items() if k.startswith("user_feat.")}
        self.histories_, self.item_counts_ = tensors["histories"].to(dev), tensors["item_counts"].to(dev)
        self.user_vectors_, self.item_vectors_ = tensors["user_vectors"].to(dev), tensors["item_vectors"].to(dev)
        self.history_ = list(meta.get("history", []))
