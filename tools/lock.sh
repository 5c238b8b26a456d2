#!/usr/bin/env bash
# Re-resolve constraints.txt: every runtime and dev dependency pinned to an exact version.
# Needs uv (`python -m pip install uv`). Review the diff, run `.ci/run`, then commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
{
    echo "# Exact versions of every runtime and dev dependency, resolved from pyproject.toml + constraints.in"
    echo "# by tools/lock.sh for CPython 3.11 on x86-64 Linux (also installs on 3.12). Do not edit by hand."
    echo "torch==$(sed -n 's/^torch==//p' constraints.in)"
    uv pip compile pyproject.toml --extra dev --extra faiss --extra ray --extra peers -c constraints.in --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 "${links[@]}" --no-emit-package torch --no-header --no-annotate \
        --quiet
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
