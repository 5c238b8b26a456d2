"""constraints.txt pins every runtime and dev dependency to one exact version (the README and CI install with it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """name → exact version from constraints.txt; fails on any line that is not an exact pin."""
    out: dict[str, str] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;,<>=!~]+)(\s*;.*)?", line)
        assert match, f"constraints.txt line {number}: {line!r} is not an exact 'name==version' pin"
        out[canonical(match[1])] = match[2]
    return out


def declared() -> set[str]:
    """Every dependency pyproject.toml declares, extras included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    return {canonical(re.match(r"[A-Za-z0-9._-]+", spec)[0]) for spec in specs}  # type: ignore[index]


def test_every_declared_dependency_is_pinned() -> None:
    assert sorted(declared() - pins().keys()) == []


@pytest.mark.parametrize("name", ["pytest", "schemathesis", "hypothesis", "fastapi", "torch", "numpy", "pydantic"])
def test_the_test_tools_and_core_libraries_are_pinned(name: str) -> None:
    assert re.fullmatch(r"\d+(\.\d+)+", pins()[name])
