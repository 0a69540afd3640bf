#!/usr/bin/env bash
# The GPU check of BENCHMARKS.md in one command (< 8 minutes on one NVIDIA GPU): see benchmarks/gpu.py.
#   benchmarks/gpu.sh [--mode quick|smoke] [--device cuda|cpu] [--out FILE.json]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if command -v nvidia-smi > /dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" timeout 470 "$PYTHON" benchmarks/gpu.py "$@"
