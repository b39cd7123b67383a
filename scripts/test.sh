#!/usr/bin/env bash
# The test command (README; .ci/run calls exactly this): provision if needed, then run the whole suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m unit`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$REPO/scripts/provision.sh" --browser | grep -E '^(AP_HOME|PYTHON|COMFYUI)=' | sed 's/^/export /')"
export ANIMAPOSE_COMFYUI="$COMFYUI"
cd "$REPO"
mkdir -p artifacts
# The venv's pytest, not `python -m pytest`: that would put the repository root on sys.path, where the pack's nodes/
# shadows ComfyUI's nodes.py.
exec "$(dirname "$PYTHON")/pytest" "$@"
