"""CameraCtrl nodes: load the camera encoder, make a camera trajectory, apply it to an inflated MODEL."""

from __future__ import annotations

from comfy_api.latest import io

from ..animapose.known_models import label_file
from ..animapose.motion import MAX_FRAMES
from ..animapose.motion.addons.camera_trajectories import TRAJECTORY_NODE
from .common import (
    MOTION_CATEGORY,
    MOTION_MODELS_FOLDER,
    PREFIX,
    PackNode,
    full_path,
    node_errors,
    node_info,
    queue_check,
)

CameraCtrlType = io.Custom("ANIMAPOSE_CAMERACTRL")
CameraTrajectoryType = io.Custom("ANIMAPOSE_CAMERA_TRAJECTORY")
NO_FILE = "(none: use the preset)"


def _files(folder: str) -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(folder)


def _pose_files() -> list[str]:
    import folder_paths

    from ..animapose.motion.addons.camera_trajectories import list_pose_files

    return [NO_FILE, *list_pose_files(folder_paths.get_input_directory())]


class LoadCameraCtrl(PackNode):
    DISPLAY = "Load AnimateDiff CameraCtrl"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadCameraCtrl",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Loads CameraCtrl (camera-path control for AnimateDiff v3) from models/animatediff_models: "
                "CameraCtrl_pruned.safetensors as AnimateDiff-Evolved users have it, or the release's CameraCtrl.ckpt "
                "(read without running pickled code). Its camera encoder turns a camera trajectory into features "
                "that its attention adapters add to the v3 motion modules."),
            inputs=[io.Combo.Input("cameractrl_name", options=_files(MOTION_MODELS_FOLDER),
                                   tooltip="CameraCtrl file in models/animatediff_models (the folder AnimateDiff-Evolved "
                                           "uses too).")],
            outputs=[CameraCtrlType.Output(display_name="cameractrl",
                                           tooltip="The camera encoder, for 'Apply CameraCtrl to AnimateDiff'.")],
        )

    @classmethod
    def execute(cls, cameractrl_name: str) -> io.NodeOutput:
        from ..animapose.motion.addons.cameractrl import load_cameractrl

        with node_errors(cls.DISPLAY):
            path = full_path(MOTION_MODELS_FOLDER, cameractrl_name, "cameractrl_name")
            ctrl = load_cameractrl(path, cameractrl_name)
        text = ctrl.info.summary()
        label = label_file("motion_modules", path, cameractrl_name)
        if label:
            text += "\n" + label
        return io.NodeOutput(ctrl, ui=node_info(cls.DISPLAY, text))


class CameraTrajectory(PackNode):
    DISPLAY = TRAJECTORY_NODE

    @classmethod
    def define_schema(cls):
        from ..animapose.motion.addons.camera_trajectories import POSE_HEIGHT, POSE_WIDTH, PRESET_NAMES

        return io.Schema(
            node_id=PREFIX + "CameraTrajectory",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "A camera path for CameraCtrl: a preset move (pan = slide sideways or up/down, zoom = move forward or "
                "back, orbit = circle around a point ahead, turn/tilt/roll = rotate in place) over 'frames' frames, or "
                "a RealEstate10K pose file (CameraCtrl's own format: a URL line, then per frame 'timestamp fx fy cx cy "
                "0 0' and a 3x4 world-to-camera matrix) from ComfyUI's input folder."),
            inputs=[
                io.Combo.Input("preset", options=PRESET_NAMES, default="zoom in",
                               tooltip="The camera move when no pose file is chosen; frame 0 is the starting view."),
                io.Int.Input("frames", default=16, min=1, max=MAX_FRAMES,
                             tooltip="Frames of the preset move: the latent's frame count, which is checked before "
                                     "sampling as Prompt Travel's frames are (CameraCtrl was trained on 16)."),
                io.Float.Input("speed", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Scales each step of the preset (1: 0.1 scene units or 2 degrees per frame; "
                                       "negative reverses the move)."),
                io.Combo.Input("pose_file", options=_pose_files(), default=NO_FILE,
                               tooltip="A .txt pose file in ComfyUI's input folder (press R after adding one); it "
                                       "replaces the preset. It needs at least as many poses as the latent has "
                                       "frames (a longer file: the clip follows its first poses), at most 4096. "
                                       "Checked when the prompt is queued; paths outside the input folder, and links "
                                       "leading out of it, are refused."),
                io.Int.Input("pose_width", default=POSE_WIDTH, min=1, max=16384, optional=True,
                             tooltip="Width of the video the pose file was taken from (RealEstate10K: 1280); its "
                                     "intrinsics are fractions of it."),
                io.Int.Input("pose_height", default=POSE_HEIGHT, min=1, max=16384, optional=True,
                             tooltip="Height of the video the pose file was taken from (RealEstate10K: 720)."),
            ],
            outputs=[CameraTrajectoryType.Output(display_name="camera",
                                                 tooltip="The camera path, for 'Apply CameraCtrl to AnimateDiff'.")],
        )

    @classmethod
    def validate_inputs(cls, pose_file=None):
        # the file's own checks first (path guard, then its numbers), so an escape or a bad pose is named as such;
        # then the list check that ComfyUI skips for an input named here
        problem = queue_check(cls, {}, lambda: _read_pose_file(pose_file))
        return problem if problem is not True else queue_check(cls, {"pose_file": pose_file})

    @classmethod
    def execute(cls, preset: str, frames: int, speed: float, pose_file: str, pose_width: int | None = None,
                pose_height: int | None = None) -> io.NodeOutput:
        from ..animapose.motion.addons.camera_trajectories import (
            POSE_HEIGHT,
            POSE_WIDTH,
            load_pose_file,
            preset_trajectory,
        )

        with node_errors(cls.DISPLAY):
            if pose_file == NO_FILE:
                trajectory = preset_trajectory(preset, frames, speed)
            else:
                import folder_paths

                trajectory = load_pose_file(folder_paths.get_input_directory(), pose_file, pose_width or POSE_WIDTH,
                                            pose_height or POSE_HEIGHT)
        return io.NodeOutput(trajectory, ui=node_info(cls.DISPLAY, trajectory.describe()))


def _read_pose_file(name):
    if not isinstance(name, str) or name == NO_FILE:  # not a name: the list check reports it
        return None
    import folder_paths

    from ..animapose.motion.addons.camera_trajectories import load_pose_file

    return load_pose_file(folder_paths.get_input_directory(), name)


class ApplyCameraCtrl(PackNode):
    DISPLAY = "Apply CameraCtrl to AnimateDiff"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "ApplyCameraCtrl",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Makes the motion of an AnimateDiff v3 MODEL follow a camera path (CameraCtrl): the camera encoder "
                "reads the path's Plücker rays and its adapters condition the first temporal attention of every down "
                "and up motion module. Connect the MODEL from 'Apply AnimateDiff Motion Model' (v3_sd15_mm.ckpt); "
                "works with any sampler and inside context windows of up to 16 frames."),
            inputs=[
                io.Model.Input("model", tooltip="A MODEL with AnimateDiff v3 applied (the incoming MODEL is not changed)."),
                CameraCtrlType.Input("cameractrl", tooltip="From 'Load AnimateDiff CameraCtrl'."),
                CameraTrajectoryType.Input(
                    "camera", tooltip="From 'CameraCtrl Camera Move': a preset move or a pose file."),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="How strongly the camera path steers the motion (CameraCtrl's adapter scale; "
                                       "0 = plain AnimateDiff)."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL whose motion follows the camera path.")],
        )

    @classmethod
    def execute(cls, model, cameractrl, camera, strength: float) -> io.NodeOutput:
        from ..animapose.motion.addons.cameractrl import apply_cameractrl

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(apply_cameractrl(model, cameractrl, camera, strength))


NODES = [LoadCameraCtrl, CameraTrajectory, ApplyCameraCtrl]
