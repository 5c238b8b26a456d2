"""When a request reached the front of the system, from a proxy's stamp header (e.g. ``X-Request-Start``).

The service counts a request's deadline from the moment it reads the request. Under overload a request can wait
far longer before that — in a load balancer's queue or in the socket buffers while every core is busy — and a
request answered "within its deadline" by the server's clock reaches the user late. A front proxy that stamps each
request with the time it arrived (nginx ``proxy_set_header X-Request-Start "t=${msec}"``; HAProxy and Heroku's
router add the same header) lets the service count that wait too: the request's arrival becomes
``perf_counter() - wait`` with ``wait = max(now - stamp, 0)``, so admission sheds requests that have already
spent their deadline upstream, and the pipeline's stage budgets shrink by what was spent. The two clocks must
agree: a stamp from the future counts as no wait, and one older than ``MAX_WAIT_S`` is taken for a clock error
and ignored. Off unless the operator names the header (``rankstack serve --request-start-header``).
"""

from __future__ import annotations

import math

__all__ = ["MAX_WAIT_S", "stamp_seconds", "upstream_wait_s"]

MAX_WAIT_S = 600.0  # a stamp older than this is a wrong clock, not a queue
# Unit by magnitude (seconds since 1970 are ~1.8e9 in 2026): below 1e11 seconds, then ms, µs, ns.
_UNITS = ((1e11, 1.0), (1e14, 1e-3), (1e17, 1e-6), (math.inf, 1e-9))


def stamp_seconds(value: bytes | str) -> float | None:
    """Seconds since the epoch in a stamp — ``t=`` prefix optional; seconds (``t=1764720000.123``, nginx ``$msec``),
    milliseconds, microseconds (Apache ``%t``, HAProxy) or nanoseconds, told apart by magnitude — or None when it
    is not one positive finite number."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text[:2] in ("t=", "T="):
        text = text[2:]
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    scale = next(unit for bound, unit in _UNITS if number < bound)
    return number * scale


def upstream_wait_s(value: bytes | str, now: float) -> float | None:
    """Seconds between the stamp and ``now`` (``time.time()``), ``max(now - stamp, 0)``; None when the stamp does
    not parse or lies more than ``MAX_WAIT_S`` in the past (clocks that disagree)."""
    stamp = stamp_seconds(value)
    if stamp is None:
        return None
    wait = now - stamp
    if wait > MAX_WAIT_S:
        return None
    return max(wait, 0.0)
