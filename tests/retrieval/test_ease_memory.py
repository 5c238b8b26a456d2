"""EASE's memory check: the estimate counts the dense buffers held, and a shortfall fails before allocation."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.errors import InsufficientMemoryError
from rankstack.retrieval import ease_memory
from rankstack.retrieval.ease import EASE, EASEConfig
from rankstack.retrieval.ease_memory import check_memory, dense_bytes, host_bytes

CPU = torch.device("cpu")


def _dataset(n_items: int = 30) -> Dataset:
    users = np.repeat(np.arange(10), 3)
    items = np.arange(30) % n_items
    return Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="tiny")


def test_host_bytes_counts_dense_buffers_and_one_gram_block() -> None:
    assert dense_bytes(38_000) == 4 * 38_000**2  # 5.8 GB: the figure of issue 15
    assert host_bytes(100, 2) == 2 * 4 * 100 * 100 + 4 * 100 * 100  # a 100-item Gram fits one block


def test_shortfall_names_items_bytes_needed_and_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease_memory, "available_memory_bytes", lambda: (1_000_000, "MemAvailable in /proc/meminfo"))
    needed = host_bytes(1000, 1)
    with pytest.raises(InsufficientMemoryError) as err:
        check_memory(1000, 1, device=CPU, max_memory_gb=None)
    message = str(err.value)
    assert f"{needed:,} bytes" in message and "1,000 items" in message
    assert "(1 dense float32 1,000 × 1,000 matrix of 0.0 GB)" in message
    assert "MemAvailable in /proc/meminfo is 0.0 GB (1,000,000 bytes)" in message
    assert "max_memory_gb" in message and "rare items" in message


def test_enough_memory_returns_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease_memory, "available_memory_bytes", lambda: (10**12, "test"))
    assert check_memory(1000, 2, device=CPU, max_memory_gb=None) == host_bytes(1000, 2)


def test_max_memory_gb_replaces_the_available_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease_memory, "available_memory_bytes", lambda: (1, "test"))
    check_memory(1000, 1, device=CPU, max_memory_gb=1.0)  # allowed: the user's own limit
    with pytest.raises(InsufficientMemoryError, match=re.escape("the limit max_memory_gb=0.001 is 0.0 GB")):
        check_memory(1000, 1, device=CPU, max_memory_gb=0.001)


def test_unknown_available_memory_skips_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease_memory, "available_memory_bytes", lambda: (None, "unknown"))
    assert check_memory(10**6, 4, device=CPU, max_memory_gb=None) == host_bytes(10**6, 4)


def test_fit_and_path_check_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ease_memory, "available_memory_bytes", lambda: (host_bytes(30, 1), "test"))
    def no_gram(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Gram matrix was built before the memory check")
    monkeypatch.setattr("rankstack.retrieval.ease.gram_matrix", no_gram)
    with pytest.raises(InsufficientMemoryError, match="2 dense float32 30 × 30 matrices"):
        next(EASE(EASEConfig(device="cpu")).fit_path(_dataset(), [1.0]))
    with pytest.raises(InsufficientMemoryError, match=r"needs .* for 30 items"):
        EASE(EASEConfig(device="cpu", max_memory_gb=1e-6)).fit(_dataset())


def test_meminfo_is_read_without_psutil(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    2000000 kB\n")
    monkeypatch.setattr(ease_memory, "MEMINFO", meminfo)
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil → ImportError
    assert ease_memory.available_memory_bytes() == (2_000_000 * 1024, f"MemAvailable in {meminfo}")
