"""The torch-trained models on Ray Train's ``TorchTrainer`` (DDP): the models' own training loops, run on ``N``
workers through :mod:`rankstack.data_parallel`, with a checkpoint after every epoch and a restart from the last one
when a worker dies (``FailureConfig(max_failures)``).

Each worker builds the model from the same name and settings and calls its ordinary ``fit``; inside it, the loop's
loss module is wrapped by ``ray.train.torch.prepare_model`` (DDP over gloo on CPUs), every global batch is dealt
out by rank, worker 0 validates for all and reports each finished epoch's resume state with
``ray.train.report(..., checkpoint=…)``. After a failure Ray Train starts the worker group again and each worker's
loop continues from ``ray.train.get_checkpoint()``. Worker 0 returns the fitted model in the final checkpoint, in
the model's own saved form (``save_source``), and the driver loads it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch

from rankstack import data_parallel
from rankstack.data.dataset import Dataset
from rankstack.data_parallel import DataParallel, ResumeState, Step
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.retrieval.source import CandidateSource

if TYPE_CHECKING:
    import polars as pl

    from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

T = TypeVar("T")
RESUME_FILE = "resume.pt"  # an epoch's checkpoint: the loop's resume state (torch.save, read weights-only)
AfterEpoch = Callable[[int, int, bool], None]  # (rank, epoch, resumed): e.g. a fault drill that kills a worker
TORCH_SOURCES = ("sasrec", "two-tower")


class RayDataParallel(DataParallel):
    """:class:`~rankstack.data_parallel.DataParallel` on the Ray Train worker group this process belongs to."""

    checkpoints = True

    def __init__(self, after_epoch: AfterEpoch | None = None) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.after_epoch = after_epoch
        self.restored: ResumeState | None = None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                path = Path(folder, RESUME_FILE)
                if path.exists():
                    self.restored = torch.load(path, map_location="cpu", weights_only=True)
        self.resumed_from = 0 if self.restored is None else int(self.restored["epoch"])

    def wrap(self, step: Step) -> Callable[..., torch.Tensor]:
        """DDP around ``step`` (``prepare_model``; alone it is left as it is); unused parameters are allowed."""
        from ray.train.torch import prepare_model

        return prepare_model(step, move_to_device=False,
                             parallel_strategy_kwargs={"find_unused_parameters": True})

    def any(self, flag: bool) -> bool:
        """All-reduce (max) of ``flag`` over the worker group."""
        if self.world == 1:
            return flag
        value = torch.tensor([1 if flag else 0])
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def lead(self, run: Callable[[], T]) -> T:
        """``run()`` on worker 0, broadcast to the others."""
        if self.world == 1:
            return run()
        box: list[Any] = [run() if self.rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return cast(T, box[0])

    def checkpoint(self, epoch: int, metrics: dict[str, float], state: ResumeState) -> None:
        """Report the epoch's metrics on every worker, with worker 0's resume state as the checkpoint."""
        import ray.train

        row = {"epoch": epoch, "final": False, **{k: float(v) for k, v in metrics.items() if k != "epoch"}}
        if self.rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(state, Path(folder, RESUME_FILE))
                ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(row)
        if self.after_epoch is not None:
            self.after_epoch(self.rank, epoch, self.restored is not None)

    def restore(self) -> ResumeState | None:
        """The state of the last epoch checkpointed by an earlier attempt of this run (None on the first)."""
        return self.restored


def _fit_here(config: dict[str, Any]) -> tuple[Any, Callable[[str], object]]:
    """Build and fit this worker's model (through the data-parallel seam in force); (model, its saver)."""
    import ray

    if config["kind"] == "multitask":
        from rankstack.ranking.multitask import MultiTaskRanker
        from rankstack.ranking.ranker_files import save_ranker

        train, validation = ray.get(config["data"])
        ranker = MultiTaskRanker(config["model"]).fit(train, validation)
        return ranker, lambda folder: save_ranker(ranker, folder)
    from rankstack.pipeline.components import build_source
    from rankstack.retrieval.source_files import save_source

    source = build_source(config["name"], config["settings"]).fit(ray.get(config["data"]))
    return source, lambda folder: save_source(source, folder)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: fit the model through :class:`RayDataParallel`; worker 0 returns it."""
    import ray.train

    torch.set_num_threads(int(config["threads"]))
    parallel = RayDataParallel(config["after_epoch"])
    with data_parallel.use(parallel):
        model, save = _fit_here(config)
    summary = model.fit_summary() if callable(getattr(model, "fit_summary", None)) else model.fit_summary_
    row = {"final": True, "resumed_from": parallel.resumed_from, "workers": parallel.world,
           "epochs_run": None if summary is None else summary.epochs_run}
    if parallel.rank == 0:
        with tempfile.TemporaryDirectory() as folder:
            save(folder)
            ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(folder))
    else:
        ray.train.report(row)


@contextlib.contextmanager
def _run(config: dict[str, Any], data: Any, backend: Backend, label: str, max_failures: int,
         storage: str | Path | None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """One TorchTrainer run of :func:`_worker`: yields (worker 0's final checkpoint folder, the report); Ray Train's
    run folder is removed afterwards unless ``storage`` named it."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if max_failures < 0:
        raise ValueError(f"max_failures must be >= 0, got {max_failures}")
    where = Path(storage) if storage is not None else Path(tempfile.mkdtemp(prefix="rankstack-ddp-"))
    try:
        with ray_session(backend) as ray:
            workers = worker_count(ray, backend)
            trainer = TorchTrainer(
                _worker, train_loop_config={**config, "data": ray.put(data)},
                scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(storage_path=str(where.resolve()), name=f"ddp-{label}",
                                     failure_config=FailureConfig(max_failures=max_failures),
                                     checkpoint_config=CheckpointConfig(num_to_keep=2)))
            result = trainer.fit()
        if result.checkpoint is None or Path(result.checkpoint.path, RESUME_FILE).exists():
            raise RuntimeError(f"Ray Train returned no fitted {label}: {result.error}")
        metrics = dict(result.metrics or {})
        yield Path(result.checkpoint.path), {"workers": workers, "resumed_from": int(metrics.get("resumed_from", 0)),
                                             "epochs_run": metrics.get("epochs_run"),
                                             "storage": None if storage is None else str(where)}
    finally:
        if storage is None:
            shutil.rmtree(where, ignore_errors=True)


def fit_source_on_ray(name: str, settings: Mapping[str, object] | None, dataset: Dataset, backend: Backend, *,
                      max_failures: int = 2, storage: str | Path | None = None, threads: int = 1,
                      after_epoch: AfterEpoch | None = None) -> tuple[CandidateSource, dict[str, Any]]:
    """Fit source ``name`` (``sasrec`` or ``two-tower``) with ``settings`` on ``backend.workers`` Ray Train workers
    (DDP, ``threads`` torch threads each); a run whose workers fail is restarted from its last epoch up to
    ``max_failures`` times. Returns the fitted model (as the driver loads it from worker 0's final checkpoint) and
    the run's report: ``workers``, ``resumed_from`` (the epoch the last attempt started after; 0 if none failed),
    ``epochs_run`` and ``storage`` (Ray Train's run folder with the checkpoints, kept when given; by default a
    temporary folder, removed once the model is loaded)."""
    from rankstack.pipeline.components import source_class
    from rankstack.retrieval.source_files import load_source

    if name not in TORCH_SOURCES:
        raise ValueError(f"--backend ray trains {' and '.join(TORCH_SOURCES)} with DDP; {name!r} is not one of them")
    config = {"kind": "source", "name": name, "settings": dict(settings or {}), "threads": threads,
              "after_epoch": after_epoch}
    with _run(config, dataset, backend, name, max_failures, storage) as (folder, report):
        return load_source(folder, source_class), report


def fit_multitask_on_ray(model: MultiTaskConfig, train: pl.DataFrame, validation: pl.DataFrame, backend: Backend, *,
                         max_failures: int = 2, storage: str | Path | None = None, threads: int = 1,
                         after_epoch: AfterEpoch | None = None) -> tuple[MultiTaskRanker, dict[str, Any]]:
    """:meth:`MultiTaskRanker.fit <rankstack.ranking.multitask.MultiTaskRanker.fit>` on Ray Train workers (DDP),
    as :func:`fit_source_on_ray` does for a source; the calibration on ``validation`` follows the fit as always."""
    from rankstack.ranking.ranker_files import load_ranker

    config = {"kind": "multitask", "model": model, "threads": threads, "after_epoch": after_epoch}
    with _run(config, (train, validation), backend, "multitask", max_failures, storage) as (folder, report):
        return load_ranker(folder, device=model.device), report


def source_fitter(backend: Backend, log: Callable[[str], None] | None = None
                  ) -> Callable[[str, Mapping[str, Any], Dataset], CandidateSource]:
    """``rankstack train``'s ``source_fit`` for ``backend``: SASRec and two-tower with DDP on Ray Train, any other
    source (closed-form or not torch-trained) fitted in this process as before."""
    from rankstack.pipeline.components import build_source

    def fit(name: str, settings: Mapping[str, Any], data: Dataset) -> CandidateSource:
        if name not in TORCH_SOURCES:
            return build_source(name, settings).fit(data)
        model, report = fit_source_on_ray(name, settings, data, backend)
        if log is not None:
            again = f", resumed after epoch {report['resumed_from']}" if report["resumed_from"] else ""
            log(f"source {name}: DDP on {report['workers']} Ray Train workers{again}")
        return model

    return fit


def multitask_fitter(backend: Backend) -> Callable[[MultiTaskConfig, pl.DataFrame, pl.DataFrame], MultiTaskRanker]:
    """``rankstack train``'s ``multitask_fit`` for ``backend``: the network with DDP on Ray Train."""

    def fit(model: MultiTaskConfig, train: pl.DataFrame, validation: pl.DataFrame) -> MultiTaskRanker:
        return fit_multitask_on_ray(model, train, validation, backend)[0]

    return fit
