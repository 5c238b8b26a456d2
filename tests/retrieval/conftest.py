"""Retrieval tests train small torch models: one torch thread, since two threads on a shared 2-core machine
can be ten times slower than one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from planted import one_thread


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    yield from one_thread()
