"""Where the provisioned pieces live. ``scripts/provision.sh`` creates them; the variables let CI or a user
point elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AP_HOME = Path(os.environ.get("AP_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "animapose")
COMFYUI = Path(os.environ.get("ANIMAPOSE_COMFYUI", AP_HOME / "comfyui"))
FIXTURES = Path(os.environ.get("ANIMAPOSE_FIXTURES", AP_HOME / "fixtures"))
# The name the pack has inside custom_nodes/, like a `git clone` of the repository would give it.
PACK_DIR_NAME = "comfyui-animapose"


def comfyui_available() -> bool:
    return (COMFYUI / "main.py").is_file()
