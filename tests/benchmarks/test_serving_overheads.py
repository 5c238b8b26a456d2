"""``benchmarks/serving_overheads.py``: every fixed cost it names is timed (a small run, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_serving_overheads_times_each_cost(redis_server: Any) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serving_overheads.py"), "--calls", "200",
                           "--redis", redis_server.url], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(line.rsplit(":", 1) for line in done.stdout.splitlines())
    labels = {label.strip() for label in rows}
    assert {"LoopWriter", "ScoredItem.trusted", "SQLite post, alone in its transaction",
            "SQLite post, ten in one transaction", "Redis post, alone in its call",
            "Redis post, ten in one call"} <= labels
    assert all(float(v.split()[0]) > 0 for v in rows.values())
