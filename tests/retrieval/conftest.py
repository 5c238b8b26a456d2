"""Retrieval tests train small torch models: one torch thread, since two threads on a shared 2-core machine
can be ten times slower than one."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (the ``one_torch_thread`` fixture of tests/conftest.py)."""
