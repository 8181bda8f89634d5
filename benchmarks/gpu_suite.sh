#!/usr/bin/env bash
# The GPU suite on the device machine: `bash benchmarks/gpu_suite.sh [OUT] [--steps a,b] [--dry-run]`.
# See benchmarks/gpu_suite.py. No install step: it runs on the machine's Python as it comes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" benchmarks/gpu_suite.py "$@"
