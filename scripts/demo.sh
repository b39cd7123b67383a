#!/usr/bin/env bash
# The main job (README): provision if needed, start the real ComfyUI with the pack on 127.0.0.1, make the demo
# models, queue every shipped example workflow, wait, and print where the outputs were written.
# `scripts/demo.sh --serve` keeps the server up afterwards so you can open http://127.0.0.1:8188 in a browser.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$REPO/scripts/provision.sh" | grep -E '^(AP_HOME|PYTHON|COMFYUI)=' | sed 's/^/export /')"
export ANIMAPOSE_COMFYUI="$COMFYUI"
cd "$AP_HOME"  # not the checkout: `python -m` puts the working folder on sys.path
exec "$PYTHON" -m comfyui_animapose.workshop.demo.job "$@"
