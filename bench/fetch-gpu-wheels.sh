#!/usr/bin/env bash
# Run HERE (a machine with a package registry) before a GPU call: fills bench/wheels/ (git-ignored) with the
# wheels of every package the project needs that the GPU image lacks (bench/gpu_wheels.py says how), and
# writes bench/wheels/SOURCE_COMMIT. The device call then names bench/wheels in `carry` (docs/engine.md).
#   bash bench/fetch-gpu-wheels.sh                 # what pyproject.toml needs
#   bash bench/fetch-gpu-wheels.sh --check         # only print what would be carried
#   bash bench/fetch-gpu-wheels.sh --also NAME...  # and these too
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" bench/gpu_wheels.py "$@"
