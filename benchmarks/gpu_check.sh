#!/usr/bin/env bash
# The GPU check in one command (docs/scaling.md): prints one table, keeps a log next to it.
#   benchmarks/gpu_check.sh                 # on a CUDA machine
#   benchmarks/gpu_check.sh --cpu-smoke     # anywhere: the code paths, debug flavor
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p runs
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" CLIN_JEPA_PROGRESS=0 \
  python3 benchmarks/gpu_check.py --out "runs/gpu_check_${stamp}.json" "$@" 2>&1 | tee "runs/gpu_check_${stamp}.log"
