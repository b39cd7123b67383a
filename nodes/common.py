"""What every node of the pack shares: the ID prefix, the category root, model folders and error wording."""

from __future__ import annotations

import contextlib
import os

from ..animapose.errors import AnimaPoseError

PREFIX = "AnimaPose_"
CATEGORY = "AnimaPose"
MOTION_CATEGORY = f"{CATEGORY}/AnimateDiff"
DREAMPOSE_CATEGORY = f"{CATEGORY}/DreamPose"

# Shared with AnimateDiff-Evolved on purpose: users' motion modules already live there.
MOTION_MODELS_FOLDER = "animatediff_models"
MOTION_LORA_FOLDER = "animatediff_motion_lora"
DREAMPOSE_FOLDER = "dreampose"


def register_model_folders() -> None:
    import folder_paths

    for name in (MOTION_MODELS_FOLDER, MOTION_LORA_FOLDER, DREAMPOSE_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
        # A folder registered for the first time has no extension filter and would list every file.
        folder_paths.folder_names_and_paths[name][1].update(folder_paths.supported_pt_extensions)


@contextlib.contextmanager
def node_errors(display_name: str):
    """Prefixes runtime errors with the node's name, so the message names node, input and fix."""
    try:
        yield
    except AnimaPoseError as e:
        raise e.for_node(display_name) from e.__cause__


def full_path(folder: str, name: str, input_name: str) -> str:
    import folder_paths

    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise AnimaPoseError(input_name, f"'{name}' was not found in {searched}",
                             f"put the file into models/{folder}/ and refresh the node list (press R)")
    return path
