"""Layering: the policies load without the simulator or torch, and exploration no longer drags the simulator in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "rankstack"


def _loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_bandits_import_neither_the_simulator_nor_torch() -> None:
    loaded = _loaded("rankstack.bandits")
    assert not {m for m in loaded if m.startswith("rankstack.simulation")}
    assert "torch" not in loaded


def test_the_exploration_stage_does_not_load_the_simulator() -> None:
    assert not {m for m in _loaded("rankstack.pipeline.exploration_stage") if m.startswith("rankstack.simulation")}


def test_the_library_never_imports_its_conformance_suites() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "testing" not in p.relative_to(SRC).parts and "rankstack.testing" in p.read_text()]
    assert offenders == []
