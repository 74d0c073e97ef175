#!/usr/bin/env bash
# The GPU acceptance run (issue 16): every GPU figure of inferneo-bench from one call of at most 9 minutes.
#
#   bash bench/gpu-acceptance.sh              # on the GPU machine (docs/engine.md: the device tool's call)
#   bash bench/gpu-acceptance.sh --dry-run    # here, on the CPU: tiny model, same stages, about 2-3 minutes
#   bash bench/gpu-acceptance.sh --list       # every stage's command, nothing run
#   bash bench/gpu-acceptance.sh --only bench,profile --budget 200   # a partial rerun
#
# It picks the Python that holds torch ($PYTHON, the active venv, the GPU image's /opt/torch/.venv, python3)
# and hands over to bench/gpu_acceptance.py, which runs the stages, each under its own time budget and log,
# and prints the final table last. Exit code: 0 every stage ok or skipped, 1 a stage failed or timed out.
set -u
cd "$(dirname "$0")/.." || exit 2
py="${PYTHON:-}"
if [ -z "$py" ] && [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then py="$VIRTUAL_ENV/bin/python"; fi
if [ -z "$py" ] && [ -x .venv/bin/python ] && [[ " $* " == *" --dry-run "* ]]; then py=.venv/bin/python; fi
if [ -z "$py" ] && [ -x /opt/torch/.venv/bin/python3 ]; then py=/opt/torch/.venv/bin/python3; fi
if [ -z "$py" ]; then py="$(command -v python3 || command -v python)"; fi
if [ -z "$py" ]; then echo "gpu-acceptance: no python3 found; set PYTHON=/path/to/python" >&2; exit 2; fi
exec "$py" -u bench/gpu_acceptance.py "$@"
