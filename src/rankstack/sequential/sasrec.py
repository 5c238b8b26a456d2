"""SASRec (Kang & McAuley, ICDM 2018) trained with cross-entropy over the catalog ("SASRec+",
Klenitskiy & Vasilev, RecSys 2023); a candidate source for full retrieval and a ranker of given candidates.

Scoring needs only a user's item history, so a history that grew after training (fresh clicks from the
online state) is scored without retraining: see :meth:`SASRec.score_histories`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.retrieval.source import BudgetStop, CandidateSource, SourceConfig
from rankstack.sequential.batches import pad_left, pad_left_array
from rankstack.sequential.net import SASRecNet
from rankstack.sequential.net_numpy import NumpyLastHidden
from rankstack.sequential.state_cache import StateCache, history_key

# Up to this many histories a CPU call runs the NumPy pass (faster than torch's for serving batches; larger
# batches, such as evaluation's, keep torch's fused attention; docs/benchmarks.md, "Issue 20, twentieth session").
NUMPY_MAX_BATCH = 12


class SASRecConfig(SourceConfig):
    """The SASRec paper's ML-1M architecture (2 blocks, 1 head, dim 64). ``preset``: ``cpu`` (the defaults, sized
    so a ≤ 100k-event log trains in minutes on 2 cores: the last 50 items, lr 3e-3, at most 50 epochs, patience 5)
    or ``gpu`` (the paper's ML-1M schedule: 200 items, lr 1e-3, at most 200 epochs, patience 10); settings given
    explicitly win over the preset. ``time_budget_s`` bounds the whole fit, validation passes included."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "gpu": {"max_len": 200, "epochs": 200, "patience": 10, "lr": 1e-3}}

    preset: Literal["cpu", "gpu"] = "cpu"
    max_len: int = Field(default=50, ge=1)
    hidden_dim: int = Field(default=64, ge=1)
    blocks: int = Field(default=2, ge=1)
    heads: int = Field(default=1, ge=1)
    ffn_mult: int = Field(default=1, ge=1)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=128, ge=1)
    epochs: int = Field(default=50, ge=1)
    sampled_negatives: int = Field(default=0, ge=0, description="0: full softmax; else uniform shared negatives")
    crop: Literal["last", "random"] = "last"
    validation: bool = Field(default=True, description="hold out each user's last item to early-stop on")
    eval_every: int = Field(default=1, ge=1)
    patience: int = Field(default=5, ge=1)
    eval_k: int = Field(default=10, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    amp: bool = Field(default=True, description="bfloat16 autocast on CUDA")
    seed: int = 0
    device: str = "auto"


class SASRec(CandidateSource):
    """score(u, i) = ⟨h_T(u), e_i⟩: the last hidden state of u's history against the tied item embeddings.

    Loss: mean over non-pad positions t of −log softmax_i(⟨h_t, e_i⟩)[s_{t+1}] (full catalog), or over the
    target plus ``sampled_negatives`` shared uniform negatives (accidental hits masked).
    """

    name = "sasrec"
    config_class = SASRecConfig
    closed_form = False
    config: SASRecConfig
    device_: torch.device
    n_items_: int
    histories_: list[np.ndarray]
    net_: SASRecNet
    history_: list[dict[str, float]]
    best_epoch_: int
    budget_stop_: BudgetStop | None

    def fit(self, dataset: Dataset) -> SASRec:
        """Train on every user's sequence; early-stop on each user's last item when ``validation``
        (the loop lives in :mod:`rankstack.sequential.sasrec_train`)."""
        from rankstack.sequential.sasrec_train import train_sasrec

        cache, self.state_cache = self.state_cache, None  # validation scores change with the weights
        train_sasrec(self, dataset)
        self.state_cache = cache
        self._forget_states()
        return self

    def new_net(self) -> SASRecNet:
        """An untrained network of the configured shape for ``n_items_`` items, on ``device_``."""
        return SASRecNet(self.n_items_, self.config).to(self.device_)

    def autocast(self) -> AbstractContextManager[Any]:
        """bfloat16 autocast on CUDA when ``amp``; no-op otherwise."""
        if self.config.amp and self.device_.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    state_cache: StateCache | None = None

    def enable_state_cache(self, capacity: int) -> None:
        """Keep up to ``capacity`` user states between calls of :meth:`user_states` (serving); 0 turns it off.
        A cache of that capacity already on keeps its states (pipelines sharing this model under other configs)."""
        if self.state_cache is not None and self.state_cache.capacity == capacity:
            return
        self.state_cache = StateCache(capacity) if capacity > 0 else None
        self._items_np = None

    def _forget_states(self) -> None:
        self._items_np = None
        self._numpy_pass = None  # its arrays (and the old network's tensors it keeps) go with the old weights
        if self.state_cache is not None:
            self.state_cache.clear()

    _items_np: np.ndarray | None = None

    def _item_array(self) -> np.ndarray:
        """The item table as float32 numpy (CPU models), kept while the state cache is on: serving does not
        change the weights, and fetching it through the module costs ~50 us a call."""
        table = self._items_np
        if table is None:
            table = self.net_.item_table().detach().float().numpy()
            if self.state_cache is not None:
                self._items_np = table
        return table

    def user_states(self, histories: Sequence[np.ndarray], batch_size: int = 2048) -> torch.Tensor:
        """Last hidden state [B, D] (float32) of each history of internal item ids (any length, may be empty);
        with a state cache, only the histories not seen before run through the network."""
        self._require_fitted()
        self._check_items(histories)
        cache = self.state_cache
        if cache is None:
            return self._compute_states(histories, batch_size)
        keys = [history_key(h, self.config.max_len) for h in histories]
        found = cache.get_many(keys)
        missing = [row for row, state in enumerate(found) if state is None]
        if missing:
            with torch.inference_mode():  # the states leave as numpy: no autograd bookkeeping (~10% of a pass)
                fresh = self._compute_states([histories[r] for r in missing], batch_size).cpu().numpy()
            cache.put_many([keys[r] for r in missing], fresh)
            for at, row in enumerate(missing):
                found[row] = fresh[at]
        rows = [s for s in found if s is not None]
        if not rows:
            return torch.zeros(0, self.config.hidden_dim, device=self.device_)
        return torch.from_numpy(np.stack(rows)).to(self.device_)

    _numpy_pass: NumpyLastHidden | None = None

    def _numpy_last_hidden(self) -> NumpyLastHidden | None:
        """The NumPy pass over this model's network (on the CPU, float32), gathered again once the network changed;
        None where torch's own pass serves."""
        if self.device_.type != "cpu":
            return None
        kept = self._numpy_pass
        if kept is not None and kept.current(self.net_):
            return kept
        if not NumpyLastHidden.supports(self.net_):
            return None
        kept = self._numpy_pass = NumpyLastHidden(self.net_)
        return kept

    def _compute_states(self, histories: Sequence[np.ndarray], batch_size: int) -> torch.Tensor:
        """The network's last hidden state of each history, in batches of ``batch_size``; serving-sized calls on
        the CPU (at most ``NUMPY_MAX_BATCH`` histories) run the NumPy pass (``net_numpy``)."""
        if self.net_.training:  # eval() walks every submodule: skip it on the serving hot path
            self.net_.eval()
        if len(histories) <= NUMPY_MAX_BATCH and (fast := self._numpy_last_hidden()) is not None:
            return torch.from_numpy(fast(pad_left_array(histories, self.config.max_len)))
        out = []
        for start in range(0, len(histories), batch_size):
            seq = pad_left(histories[start : start + batch_size], self.config.max_len, self.device_)
            with torch.no_grad(), self.autocast():
                out.append(self.net_.last_hidden(seq).float())
        if not out:
            return torch.zeros(0, self.config.hidden_dim, device=self.device_)
        return out[0] if len(out) == 1 else torch.cat(out)

    def score_histories(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores of every item [B, n_items] for each history (e.g. the training history plus fresh clicks)."""
        with torch.no_grad():
            return self.user_states(histories) @ self.net_.item_table().float().T

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Scores [B, C] of given candidate item ids per history; ``-1`` padding scores −inf."""
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[0] != len(histories):
            raise ValueError(f"candidates must be [{len(histories)}, C], got {tuple(cand.shape)}")
        if cand.size and int(cand.max()) >= self.n_items_:
            raise ValueError(f"candidate item id {int(cand.max())} is outside the catalog of {self.n_items_} items")
        if self.device_.type == "cpu":  # numpy gathers and multiplies small blocks ~10x faster than torch
            vectors = self.user_states(histories).numpy()
            scores = np.matmul(self._item_array()[np.maximum(cand, 0)], vectors[:, :, None])[..., 0]
            scores[cand == PAD_ITEM] = -np.inf
            return torch.from_numpy(scores)
        with torch.no_grad():
            states = self.user_states(histories)
            index = torch.as_tensor(cand, device=self.device_)
            emb = self.net_.item_table().float()[index.clamp_min(0)]
            scores_t = torch.einsum("bcd,bd->bc", emb, states)
        return scores_t.masked_fill(index == PAD_ITEM, float("-inf"))

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Scores of every item from each user's full training history."""
        self._require_fitted()
        return self.score_histories([self.histories_[int(u)] for u in np.asarray(user_ids)])

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """Each user's last hidden state from the stored history (a VectorIndex query over ``item_vectors``)."""
        self._require_fitted()
        return self.user_states([self.histories_[int(u)] for u in np.asarray(user_ids)])

    def item_vectors(self) -> torch.Tensor:
        """The output item embeddings [n_items, D] the model scores with (tied to its input embeddings)."""
        self._require_fitted()
        return self.net_.item_table().detach().float()

    def with_histories(self, dataset: Dataset) -> SASRec:
        """This fitted model (the same weights, shared) reading ``dataset``'s histories and seen items instead of
        those it was fitted on: what a model fitted once serves with as the events move on (same id maps)."""
        self._require_fitted()
        if dataset.n_items != self.n_items_:
            raise ValueError(f"with_histories: the dataset has {dataset.n_items} items, the model {self.n_items_}")
        other = copy.copy(self)
        other.train_ = dataset.interaction_matrix(binary=True)
        other.histories_ = [np.asarray(h, dtype=np.int64) for h in dataset.sequences()]
        return other

    def continued(self, dataset: Dataset) -> SASRec:
        """A new model with these settings whose training starts from this model's weights and goes on over
        ``dataset`` (same id maps): epoch 0, the starting weights, is validated first and kept unless a later
        epoch beats it. What a model fitted once before the ranker's windows serves with once it has also seen
        the windows' events."""
        from rankstack.sequential.sasrec_train import train_sasrec

        self._require_fitted()
        if dataset.n_items != self.n_items_:
            raise ValueError(f"continued: the dataset has {dataset.n_items} items, the model {self.n_items_}")
        other = SASRec(self.config)
        train_sasrec(other, dataset, start=self.net_.state_dict())
        return other

    def update_histories(self, user_ids: Sequence[int], items: Sequence[int]) -> None:
        """Append events (internal ids, in time order) to the stored histories; no retraining needed."""
        self._check_items([np.asarray(items, dtype=np.int64)])
        for user, item in zip(user_ids, items, strict=True):
            self.histories_[int(user)] = np.append(self.histories_[int(user)], np.int64(item))

    def _check_items(self, histories: Sequence[np.ndarray]) -> None:
        for h in histories:
            if len(h) and (int(np.max(h)) >= self.n_items_ or int(np.min(h)) < 0):
                raise ValueError(f"history holds item ids outside [0, {self.n_items_}): map unknown items out first")

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Network weights, the stored histories (flattened + offsets) and the training history."""
        tensors = {f"net.{k}": v.detach() for k, v in self.net_.state_dict().items()}
        lengths = np.array([len(h) for h in self.histories_], dtype=np.int64)
        tensors["histories.items"] = torch.from_numpy(np.concatenate([*self.histories_, np.zeros(0, np.int64)]))
        tensors["histories.offsets"] = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        stop = None if self.budget_stop_ is None else self.budget_stop_.to_json()
        summary = None if self.fit_summary_ is None else self.fit_summary_.to_json()
        return tensors, {"n_items": self.n_items_, "history": self.history_, "best_epoch": self.best_epoch_,
                         "budget_stop": stop, "fit_summary": summary}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Rebuild the network on the configured device and restore weights and histories."""
        self.device_ = resolve_device(self.config.device)
        self.n_items_ = int(meta["n_items"])
        self.net_ = self.new_net()
        self.net_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.net_.eval()
        self._forget_states()
        items, offsets = tensors["histories.items"].numpy(), tensors["histories.offsets"].numpy()
        self.histories_ = [items[offsets[u] : offsets[u + 1]].copy() for u in range(len(offsets) - 1)]
        self.history_ = list(meta.get("history", []))
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        self.budget_stop_ = BudgetStop.from_json(meta.get("budget_stop"))
        self.fit_summary_ = FitSummary.from_json(meta.get("fit_summary"))
