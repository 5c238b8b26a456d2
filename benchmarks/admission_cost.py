"""CPU cost of load shedding's admission check per recommend request, and of the bookkeeping per batch (issue #20).

The estimate is trained on batches of 1–32 requests costing 2 ms + 0.5 ms per request (deadline 100 ms,
max_batch 32); then ``Admission.admit`` is timed for a request that is admitted (40 queued ahead) and one that is
shed by its deadline (400 ahead: the exception and its message included), and ``observe`` for one batch.
Best of 5 repeats of 200,000 calls each, one thread.

Usage: python benchmarks/admission_cost.py
"""

from __future__ import annotations

import contextlib
import timeit
from collections.abc import Callable

from rankstack.serving.admission import Admission, OverloadedError

CALLS = 200_000


def main() -> None:
    """Print the cost per call of each operation in microseconds."""
    admission = Admission(max_batch=32, max_queue=1_000, deadline_s=0.1)
    for size in (1, 4, 8, 16, 32) * 10:
        admission.observe(size, 0.002 + 0.0005 * size)
    admission.observe_gap(0.001)

    def shed() -> None:
        with contextlib.suppress(OverloadedError):
            admission.admit(400, 0.001)

    cases: list[tuple[str, Callable[[], None]]] = [
        ("admit, admitted (40 queued ahead)", lambda: admission.admit(40, 0.001)),
        ("admit, shed by deadline (400 queued ahead)", shed),
        ("observe one batch", lambda: admission.observe(32, 0.018)),
    ]
    for name, call in cases:
        seconds = min(timeit.repeat(call, number=CALLS, repeat=5)) / CALLS
        print(f"{name}: {seconds * 1e6:.2f} us")


if __name__ == "__main__":
    main()
