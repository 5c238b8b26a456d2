"""The benchmark scripts are not a package: the ones these tests exercise are loaded by file under their own
names. Their folder is not put on ``sys.path``, where ``benchmarks/sequential.py`` and others would shadow the
test packages of the same name (``tests/sequential``) for every test collected later."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> None:
    """Import ``benchmarks/<name>.py`` as module ``name`` (once)."""
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved  # serve_load puts its folder first on sys.path for its siblings (already loaded here)


for _name in ("open_loop", "serve_mix", "online_representation", "serve_load"):  # by name: load order matters
    _load(_name)
