"""The seam through which a model's own training loop runs data-parallel (DDP) without knowing on what.

A loop asks :func:`current` for the :class:`DataParallel` in force and, at each point that differs between one
process and ``world`` replicas, goes through it: the module whose ``forward`` computes a batch's loss is
:meth:`~DataParallel.wrap`-ped (DDP averages the gradients over the replicas), each global batch is cut to this
replica's :meth:`~DataParallel.part`, a decision taken on local clocks is :meth:`~DataParallel.any`-ed, a
validation pass is run by the lead replica and shared (:meth:`~DataParallel.lead`), and each finished epoch is
offered as a :meth:`~DataParallel.checkpoint` from which a restarted run :meth:`~DataParallel.restore`-s.
Outside any :func:`use` block the single-process :data:`SINGLE` is in force and every call is the identity, so the
loops run exactly as before. ``rankstack.distributed.torch_training`` supplies the Ray Train implementation; no
Ray import here.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")
ResumeState = dict[str, Any]


class Step(nn.Module):
    """A module whose ``forward(*args)`` is ``fn(*args)`` over ``net``'s parameters (what DDP wraps, so a loss
    computed through a network's own methods, not just its ``forward``, has its gradients synchronised)."""

    def __init__(self, net: nn.Module, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, *args: Any) -> torch.Tensor:
        """``fn(*args)``."""
        return self.fn(*args)


class DataParallel:
    """One process training alone (``rank`` 0 of ``world`` 1); subclasses run ``world`` replicas in step."""

    rank: int = 0
    world: int = 1
    checkpoints: bool = False  # whether :meth:`checkpoint` keeps anything (loops build the state only then)

    @property
    def active(self) -> bool:
        """Whether more than one replica trains."""
        return self.world > 1

    def wrap(self, step: Step) -> Callable[..., torch.Tensor]:
        """The callable a loop computes each batch's loss with (alone: ``step`` itself)."""
        return step

    def part(self, batch: torch.Tensor) -> torch.Tensor:
        """This replica's rows of a global batch: ``batch[rank::world]`` (alone: all of it)."""
        return batch if self.world == 1 else batch[self.rank :: self.world]

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any replica (so a clock-based stop is taken by all together)."""
        return flag

    def lead(self, run: Callable[[], T]) -> T:
        """``run()`` on the lead replica, its result on every replica (alone: ``run()``)."""
        return run()

    def checkpoint(self, epoch: int, metrics: dict[str, float], state: ResumeState) -> None:
        """Offer the state after ``epoch`` (references to the loop's objects, saved at once) for resuming (alone:
        nothing is kept)."""

    def restore(self) -> ResumeState | None:
        """The last checkpointed state of an earlier attempt of this run, or None (alone: always None)."""
        return None

    def generators(self, seed: int, device: torch.device | str) -> tuple[torch.Generator, torch.Generator]:
        """(batch randomness, row order): alone one stream draws both, as the loops always have; with replicas
        the order is the same on every replica and the batch randomness (negatives, masks) is each one's own."""
        gen = torch.Generator(device=device).manual_seed(seed)
        if not self.active:
            return gen, gen
        order = torch.Generator(device=device).manual_seed(seed)
        gen.manual_seed(seed + 1 + self.rank)
        return gen, order


def torch_state(net: nn.Module, opt: torch.optim.Optimizer, *gens: torch.Generator) -> ResumeState:
    """What every loop's checkpoint holds: the weights, the optimiser, the loop's generators and torch's global
    generator (dropout's draws)."""
    return {"net": net.state_dict(), "opt": opt.state_dict(), "gens": [g.get_state() for g in gens],
            "torch_rng": torch.get_rng_state()}


def restore_torch_state(state: ResumeState, net: nn.Module, opt: torch.optim.Optimizer,
                        *gens: torch.Generator) -> None:
    """Load what :func:`torch_state` saved back into the loop's objects."""
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    for gen, saved in zip(gens, state["gens"], strict=True):
        gen.set_state(saved)
    torch.set_rng_state(state["torch_rng"])


SINGLE = DataParallel()
_CURRENT: contextvars.ContextVar[DataParallel] = contextvars.ContextVar("data_parallel", default=SINGLE)


def current() -> DataParallel:
    """The :class:`DataParallel` in force (:data:`SINGLE` outside :func:`use`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use(parallel: DataParallel) -> Iterator[DataParallel]:
    """Run the training loops inside the block through ``parallel``."""
    token = _CURRENT.set(parallel)
    try:
        yield parallel
    finally:
        _CURRENT.reset(token)
