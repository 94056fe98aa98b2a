#!/usr/bin/env bash
# Create the benchmark-only peer environment: DGL 2.1.0 on torch 2.1.2.
#
# The venv lives at benchmarks/peer/.venv (git-ignored) and is never part of
# the project's install or CI. Everything comes from PyPI: dgl 2.1.0 ships a
# cp311 manylinux wheel there (CPU build, with graphbolt libraries for
# torch 2.1.x), and PyPI's torch 2.1.2 pulls its CUDA runtime wheels (~5 GB
# on disk), which are unused on a CPU-only machine but harmless.
#
# Idempotent: does nothing when the venv already imports dgl.
#
# Usage: bash benchmarks/peer/setup.sh   (PYTHON=python3.11 to pick the base)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
base_python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] \
    && "$venv/bin/python" -c "import dgl" >/dev/null 2>&1; then
    echo "peer venv ready: $venv"
    exit 0
fi

"$base_python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip
# torchdata 0.7.1 is the release paired with torch 2.1.x. Unpinned, pip picks
# the newest torchdata, which no longer has the torchdata.datapipes that
# `import dgl` needs (via dgl.graphbolt); pandas is imported there too.
"$venv/bin/python" -m pip install \
    "torch==2.1.2" \
    "torchdata==0.7.1" \
    "dgl==2.1.0" \
    "numpy<2" \
    scipy networkx requests tqdm psutil pydantic pyyaml "pandas<3"

"$venv/bin/python" -c \
    "import dgl, torch; print('dgl', dgl.__version__, 'torch', torch.__version__)"
