"""Running one function over contiguous shards on Ray workers, at most N at a time, with progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rankstack.progress import new_progress


def run_shards(ray: Any, fn: Callable[..., Any], shared: Sequence[Any], shards: Sequence[range], workers: int, *,
               label: str, progress: bool = False, options: dict[str, Any] | None = None) -> list[Any]:
    """``fn(*shared, shard.start, shard.stop)`` for each shard as a Ray task (one CPU unless ``options`` say more;
    retried twice if a worker dies), at most ``workers`` running at once; the results in shard order.

    ``shared`` arguments are put in the object store once and reach every task by reference (large arrays are
    read there without a copy).
    """
    remote = ray.remote(fn).options(**{"num_cpus": 1, "max_retries": 2, **(options or {})})
    refs = [ray.put(x) for x in shared]
    results: dict[int, Any] = {}
    pending: dict[Any, int] = {}
    queue = list(range(len(shards)))
    with new_progress() as bar:
        task = bar.add_task(f"{label} on {min(workers, len(shards))} Ray workers",
                            total=sum(len(s) for s in shards)) if progress else None
        while queue or pending:
            while queue and len(pending) < workers:
                i = queue.pop(0)
                pending[remote.remote(*refs, shards[i].start, shards[i].stop)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                results[i] = ray.get(ref)
                if task is not None:
                    bar.advance(task, len(shards[i]))
    return [results[i] for i in range(len(shards))]
