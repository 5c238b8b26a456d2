"""``benchmarks/app_cpu.py`` on the tiny pipeline artifact: one JSON object with a CPU time per request kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rankstack.testing.artifacts import tiny_pipeline_artifact

ROOT = Path(__file__).resolve().parents[2]


def test_app_cpu_reports_every_request_kind(tmp_path: Path) -> None:
    artifact = tiny_pipeline_artifact(tmp_path / "tiny")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "app_cpu.py"), str(artifact), "--calls", "20",
                           "--warmup", "5", "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    ms = out["cpu_ms_per_request"]
    assert set(ms) == {"recommend", "event_post", "recommend_after_event", "event_post_alone", "healthz_alone"}
    assert all(v > 0 for v in ms.values()) and out["calls"] == 20
    assert out["thread_cpu_s_during_rounds"]  # at least the loop's thread worked
