"""``--backend``, ``--workers`` and ``--address``: where a command's heavy stages run, shared by every command that
can scale out (no Ray import here: Ray is imported only when ``--backend ray`` runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rankstack.distributed.backend import Backend
from rankstack.errors import ConfigError

if TYPE_CHECKING:
    from rankstack.experiments.evaluate_run import Evaluation
    from rankstack.experiments.ltr_training import LambdaRankFit
    from rankstack.experiments.pipeline_training import SourceFit
    from rankstack.experiments.ranker_training import MultiTaskFit
    from rankstack.pipeline.config import PipelineConfig

# the sources and rankers whose training runs on Ray workers with --backend ray (rankstack.distributed)
RAY_SOURCES = ("sasrec", "two-tower")
RAY_RANKERS = ("lambdarank", "multitask")


class BackendKind(StrEnum):
    """``--backend``: this process, or Ray workers."""

    local = "local"
    ray = "ray"


BackendOption = Annotated[BackendKind, typer.Option(
    "--backend", help="local: this process; ray: Ray workers (a local Ray instance unless --address).")]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", help="Ray workers, one CPU each (default: every CPU of the Ray instance); needs --backend ray.",
    show_default=False)]
AddressOption = Annotated[str | None, typer.Option(
    "--address", help="An existing Ray cluster: ray://HOST:10001, HOST:6379 or auto (default: start a local one).",
    show_default=False)]


def backend_from(kind: BackendKind, workers: int | None, address: str | None) -> Backend:
    """The options as a checked :class:`Backend`; a bad combination or a missing Ray is a usage error (exit 2)."""
    try:
        return Backend(kind.value, workers, address).require()
    except ConfigError as exc:
        message = str(exc)
        hint = message.split()[0] if message.startswith("--") else "--backend"
        raise typer.BadParameter(message.removeprefix(hint).lstrip(), param_hint=hint) from None


def evaluation_for(backend: Backend) -> Evaluation | None:
    """The experiments' ``evaluation`` for ``backend``: None (in this process) or sharded across Ray workers."""
    if not backend.is_ray:
        return None
    from rankstack.distributed.evaluation import ShardedEvaluation

    return ShardedEvaluation(backend)


@contextlib.contextmanager
def session_for(backend: Backend) -> Iterator[Any]:
    """One Ray session around a whole command (its Ray steps then share one instance); nothing for ``local``."""
    if not backend.is_ray:
        yield None
        return
    from rankstack.distributed.cluster import ray_session

    with ray_session(backend) as ray:
        yield ray


def lambdarank_fit_for(backend: Backend) -> LambdaRankFit | None:
    """Where ``train`` fits the LambdaRank ranker's trees: None (in this process) or Ray Train's LightGBM trainer."""
    if not backend.is_ray:
        return None
    from functools import partial

    from rankstack.distributed.boosting import fit_lambdarank_on_ray

    return partial(fit_lambdarank_on_ray, backend=backend)


def ray_stages(config: PipelineConfig) -> list[str]:
    """The stages of ``config`` that train on Ray workers with ``--backend ray`` (an empty list: none; a source
    fitted once with the learned ranker's windows trains in this process)."""
    stages = [f"source {s.name}" for s in config.sources if s.name in RAY_SOURCES and s.fit == "per_window"]
    ranker = config.ranker
    kind = getattr(ranker, "kind", None)
    if kind in RAY_RANKERS:
        stages.append(f"ranker {kind}")
    elif getattr(ranker, "source", None) in RAY_SOURCES and getattr(ranker, "settings", None):
        stages.append(f"ranker {getattr(ranker, 'source', '')}")
    return stages


def source_fit_for(backend: Backend, log: Callable[[str], None]) -> SourceFit | None:
    """Where ``train`` fits the pipeline's sources: None (here) or SASRec and two-tower with DDP on Ray Train."""
    if not backend.is_ray:
        return None
    from rankstack.distributed.torch_training import source_fitter

    return source_fitter(backend, log)


def multitask_fit_for(backend: Backend) -> MultiTaskFit | None:
    """Where ``train`` fits the multi-task ranker's network: None (here) or with DDP on Ray Train."""
    if not backend.is_ray:
        return None
    from rankstack.distributed.torch_training import multitask_fitter

    return multitask_fitter(backend)
