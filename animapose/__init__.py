"""Runtime code of the AnimaPose pack: torch modules, loaders and sampling math.

Nothing in this package imports ComfyUI's node API (``comfy_api``); node classes live in ``nodes/`` and only
declare inputs and outputs before calling in here. Modules that need the ``comfy`` backend (model patching,
sampling) import it themselves; the pure-torch ones (motion module maths, format detection, pose windows)
import nothing from ComfyUI and are tested without it.
"""
