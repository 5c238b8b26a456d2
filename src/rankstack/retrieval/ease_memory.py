"""Memory estimate and check for EASE's dense item × item float32 buffers, made before any is allocated."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from rankstack.errors import InsufficientMemoryError

FLOAT32_BYTES = 4
GRAM_BLOCK_BYTES = 64 * 2**20  # the Gram matrix is built in row blocks of at most this many dense bytes
MEMINFO = Path("/proc/meminfo")


def dense_bytes(n_items: int) -> int:
    """Bytes of one dense float32 [n_items, n_items] matrix (4·n²)."""
    return FLOAT32_BYTES * n_items * n_items


def gram_block_rows(n_items: int) -> int:
    """Rows of the Gram matrix computed per block, so one dense block stays under ``GRAM_BLOCK_BYTES``."""
    return max(1, min(n_items, GRAM_BLOCK_BYTES // (FLOAT32_BYTES * max(n_items, 1))))


def host_bytes(n_items: int, buffers: int) -> int:
    """Peak host bytes: ``buffers`` dense n × n float32 matrices plus one Gram row block."""
    return buffers * dense_bytes(n_items) + FLOAT32_BYTES * n_items * gram_block_rows(n_items)


def available_memory_bytes() -> tuple[int | None, str]:
    """(bytes the OS can give without swapping, where that figure came from): psutil when installed, else
    ``MemAvailable`` of /proc/meminfo; (None, "unknown") when neither answers."""
    try:
        import psutil  # optional: /proc/meminfo below otherwise
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available), "available memory (psutil)"
    with contextlib.suppress(OSError, ValueError):
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, f"MemAvailable in {MEMINFO}"
    return None, "unknown"


def gb(n_bytes: float) -> str:
    """``5.8 GB`` (decimal gigabytes, one decimal)."""
    return f"{n_bytes / 1e9:.1f} GB"


def check_memory(n_items: int, buffers: int, *, device: torch.device, max_memory_gb: float | None,
                 what: str = "EASE") -> int:
    """The bytes ``what`` needs for ``buffers`` dense n × n float32 matrices; raises
    :class:`InsufficientMemoryError` when that exceeds ``max_memory_gb`` (if given) or the memory available
    on the device (host RAM on the CPU; free GPU memory on CUDA, where the host still builds one Gram matrix)."""
    on_gpu = device.type == "cuda"
    needs = [("host", host_bytes(n_items, 1 if on_gpu else buffers))]
    if on_gpu:
        needs.append((str(device), buffers * dense_bytes(n_items)))
    for where, needed in needs:
        if max_memory_gb is not None:
            limit: int | None = int(max_memory_gb * 1e9)
            source = f"the limit max_memory_gb={max_memory_gb:g}"
        elif where == "host":
            limit, source = available_memory_bytes()
        else:
            limit, source = int(torch.cuda.mem_get_info(device)[0]), f"free memory on {device}"
        if limit is not None and needed > limit:
            raise InsufficientMemoryError(
                f"{what} needs {gb(needed)} ({needed:,} bytes) of {where} memory for {n_items:,} items "
                f"({_matrices(buffers, n_items)}), "
                f"but {source} is {gb(limit)} ({limit:,} bytes). To proceed: shrink the catalogue (drop rare "
                f"items, e.g. keep items with at least N interactions; memory grows with items²), free memory, "
                f"fit on a GPU with enough memory (--set device=cuda), or set --set max_memory_gb=N to allow more."
            )
    return needs[-1][1]


def _matrices(buffers: int, n_items: int) -> str:
    """``2 dense float32 40,981 × 40,981 matrices of 6.7 GB each`` (singular for one)."""
    shape = f"{n_items:,} × {n_items:,}"
    if buffers == 1:
        return f"1 dense float32 {shape} matrix of {gb(dense_bytes(n_items))}"
    return f"{buffers} dense float32 {shape} matrices of {gb(dense_bytes(n_items))} each"
