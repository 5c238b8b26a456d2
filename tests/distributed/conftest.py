"""One local Ray instance (2 CPUs, no dashboard, worker logs kept off the driver) per test module that asks for it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.conftest import small_split  # noqa: F401  (the pipeline tests' small dataset, found by name)

NO_RAY = "Ray is not installed (pip install 'rankstack[ray]'; CI installs it)"
HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """``ray``, initialised once for the module with 2 CPUs; shut down after its last test."""
    if not HAS_RAY:
        if os.environ.get("RANKSTACK_REQUIRE_SERVICES") == "1":  # .ci/run: a missing service fails
            pytest.fail(f"{NO_RAY}; RANKSTACK_REQUIRE_SERVICES=1 makes this a failure, not a skip")
        pytest.skip(NO_RAY)
    import ray

    # Ray Train's controller collects reports every 2 s by default, which paces a tiny test's epochs at 2 s each
    fast = {"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env=fast)
    yield ray
    ray.shutdown()
