"""AnimateDiff training node: a motion module or a MotionLoRA trained on a batch of clips, from the graph.

Thin: it encodes the captions with the connected CLIP, splits the frames into videos and calls
``animapose.training.motion``; what flows in is not changed, Cancel stops at the next step, and the result is a motion
model the apply node takes as it is (optionally also saved to the model folder the loaders read).
"""

from __future__ import annotations

from comfy_api.latest import io

from ..animapose.errors import AnimaPoseError
from ..animapose.training.motion import DEFAULTS, MODES, PRECISIONS
from .animatediff import MotionModelType
from .common import (
    MOTION_CATEGORY,
    MOTION_LORA_FOLDER,
    MOTION_MODELS_FOLDER,
    PREFIX,
    PackNode,
    checked_output_name,
    node_errors,
    node_info,
    queue_check,
)
from .dreampose_finetune import LossMapType, TrainingReporter


def split_videos(images, frames_per_video: int) -> list:
    """The IMAGE batch as consecutive videos of ``frames_per_video`` frames (0: the whole batch is one video)."""
    n = images.shape[0]
    if frames_per_video <= 0 or frames_per_video >= n:
        return [images]
    if n % frames_per_video:
        raise AnimaPoseError("frames_per_video", f"{n} frames do not split into videos of {frames_per_video}",
                             f"set frames_per_video to a divisor of {n}, or 0 for one video")
    return [images[k:k + frames_per_video] for k in range(0, n, frames_per_video)]


def encode_captions(clip, text: str, videos: int):
    """(contexts, caption index per video, empty-prompt tokens): one caption for all videos, or one line each."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    if len(lines) not in (1, videos):
        raise AnimaPoseError("captions", f"{len(lines)} caption lines for {videos} videos",
                             "write one caption for all videos, or one line per video in their order")
    if clip is None or not hasattr(clip, "tokenize"):
        raise AnimaPoseError("clip", "this is not a CLIP text encoder", "connect the checkpoint's CLIP")

    def encode(t):
        return clip.encode_from_tokens_scheduled(clip.tokenize(t))[0][0]

    contexts = [encode(t) for t in lines]
    captions = [0] * videos if len(lines) == 1 else list(range(videos))
    return contexts, captions, encode("")


class TrainMotionModule(PackNode):
    DISPLAY = "Train AnimateDiff Motion Module"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "TrainMotionModule",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Trains AnimateDiff motion on your own clips, with the original recipe: the image model is frozen and "
                "only the temporal modules learn (noise-prediction MSE on whole clips, AnimateDiff's noise schedule). "
                "'motion_module' trains a full module (a new one whose outputs start at zero, or continues the "
                "connected one); 'motion_lora' trains a MotionLoRA (rank r on the temporal attention projections) on "
                "top of the connected motion module. Copies are trained: the inputs are not changed; Cancel stops at "
                "the next step. The result goes straight into 'Apply AnimateDiff Motion Model'."),
            inputs=[
                io.Model.Input("model", tooltip="The image MODEL (SD1.5 checkpoint) the motion is learned for; frozen."),
                io.Clip.Input("clip", tooltip="Its CLIP, to encode the captions."),
                io.Vae.Input("vae", tooltip="Its VAE, to encode the frames (frozen)."),
                io.Image.Input("images", tooltip="The training frames: one video, or several videos of the same length "
                                                 "one after the other (see frames_per_video). All frames one size, a "
                                                 "multiple of 8 (e.g. from a video loader, resized)."),
                io.String.Input("captions", multiline=True, default="",
                                tooltip="What the clips show: one caption for all videos, or one line per video."),
                io.Int.Input("frames_per_video", default=0, min=0, max=100000,
                             tooltip="Frames of each video in the batch; 0: the whole batch is one video."),
                io.Combo.Input("mode", options=MODES, default="motion_lora",
                               tooltip="motion_lora: a small LoRA on top of the connected motion module (a camera move "
                                       "or motion style from a few clips). motion_module: a whole motion module."),
                io.Int.Input("steps", default=100, min=0, max=1000000,
                             tooltip="Optimizer updates (AdamW, constant lr, gradients clipped to 1.0)."),
                io.Float.Input("learning_rate", default=DEFAULTS["motion_lora"]["learning_rate"], min=1e-8, max=1e-1,
                               step=1e-6, round=1e-8, tooltip="AdamW learning rate (AnimateDiff's training: 1e-4)."),
                io.Int.Input("lora_rank", default=32, min=1, max=1024,
                             tooltip="motion_lora: rank of each projection's update (more: more capacity, bigger "
                                     "file)."),
                io.Int.Input("frames", default=16, min=2, max=64,
                             tooltip="Frames per training clip (AnimateDiff: 16; at most the module's positions)."),
                io.Int.Input("stride", default=1, min=1, max=32,
                             tooltip="Take every stride-th frame of a video for a clip (AnimateDiff's WebVid "
                                     "training: 4 at 24 fps)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Clips per update."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of every random choice (clip, start, timestep, noise, caption dropout, "
                                     "initial weights): the same seed gives the same weights."),
                io.Combo.Input("precision", options=PRECISIONS, default="fp32",
                               tooltip="Compute precision; trained weights stay fp32. bf16: less memory, works on "
                                       "CPUs and recent GPUs. fp16: CUDA only, with loss scaling."),
                io.Boolean.Input("gradient_checkpointing", default=True,
                                 tooltip="Recompute activations in the backward pass: much less memory for about a "
                                         "third more time."),
                io.String.Input("save_name", default="",
                                tooltip="If set, the result is also saved as <save_name>.safetensors in "
                                        "models/animatediff_models (motion_module) or models/animatediff_motion_lora "
                                        "(motion_lora), in the original layout; an existing file is never "
                                        "overwritten (a number is added). Letters, digits, spaces and _ - . + ( ); "
                                        "sub/name saves into a sub-folder. Checked when queued, before training."),
                MotionModelType.Input("motion_model", optional=True,
                                      tooltip="motion_lora: the motion module the LoRA is trained on (required). "
                                              "motion_module: a module to continue training; empty: a new one."),
            ],
            outputs=[MotionModelType.Output(display_name="motion_model",
                                            tooltip="The trained motion model (for a LoRA: the input module with the "
                                                    "LoRA added at strength 1)."),
                     LossMapType.Output(display_name="loss_map", tooltip="Loss of every step, for ComfyUI's 'Plot "
                                                                         "Loss Graph'.")],
            hidden=[io.Hidden.unique_id],
            # it writes the trained file (save_name) and shows the loss, so a graph that only trains and saves runs
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, save_name, mode):
        # Runs when the prompt is queued: a name that cannot be saved fails before any step is trained, not after.
        # (ComfyUI skips its own checks for inputs named here, so the mode's list check is repeated.)
        return queue_check(cls, {"mode": mode}, lambda: save_name is None or _save_name(save_name, mode))

    @classmethod
    def execute(cls, model, clip, vae, images, captions, frames_per_video, mode, steps, learning_rate, lora_rank,
                frames, stride, batch_size, seed, precision, gradient_checkpointing, save_name,
                motion_model=None) -> io.NodeOutput:
        from ..animapose.training import motion as mt

        with node_errors(cls.DISPLAY):
            stem = _save_name(save_name, mode)  # again here, before any work: a linked name is only known now
        label = "MotionLoRA" if mode == "motion_lora" else "motion module"
        report = TrainingReporter(label, cls.hidden.unique_id if cls.hidden else None, steps,
                           preparing="copying the weights, encoding the frames")
        settings = mt.MotionTrainSettings(mode=mode, steps=steps, learning_rate=learning_rate, lora_rank=lora_rank,
                                          frames=frames, stride=stride, batch_size=batch_size, seed=seed,
                                          precision=precision, gradient_checkpointing=gradient_checkpointing)
        with node_errors(cls.DISPLAY):
            if mode == "motion_lora" and motion_model is None:
                raise AnimaPoseError("motion_model", "a MotionLoRA trains on top of a motion module, and none is "
                                     "connected", "connect 'Load AnimateDiff Motion Model', or choose motion_module")
            videos = split_videos(images, frames_per_video)
            contexts, index, empty = encode_captions(clip, captions, len(videos))
            clips = mt.Clips(videos, index, contexts, empty)
            result = mt.train_motion(model, vae, clips, settings, motion_model, report)
            name = stem or f"trained_{mode}"
            if mode == "motion_lora":
                out = mt.motion_model_with_lora(motion_model, result.lora_pairs, name)
            else:
                out = mt.motion_model_from_state(result.motion_state, name)
            text = report.summary(result.losses)
            if stem:
                path = _save(mt, result, mode, stem)
                text += f"\nsaved {path}"
        return io.NodeOutput(out, {"loss": result.losses}, ui=node_info(cls.DISPLAY, text))


def _folder(mode) -> str | None:
    return {"motion_lora": MOTION_LORA_FOLDER, "motion_module": MOTION_MODELS_FOLDER}.get(mode)


def _save_name(save_name, mode) -> str:
    """The checked name ('' for no file) for the folder the mode saves into (the text only for an unknown mode)."""
    return checked_output_name(save_name, "save_name", _folder(mode), optional=True, ext=".safetensors")


def _save(mt, result, mode: str, stem: str):
    import folder_paths

    folders = folder_paths.get_folder_paths(_folder(mode))
    # The place is checked once more (a link could have appeared meanwhile); a file of the same name that appeared
    # during training only gets the new one numbered, so the trained weights are still written.
    checked_output_name(stem, "save_name", _folder(mode))
    path = mt.free_name(folders, stem)
    if mode == "motion_lora":
        return mt.save_motion_lora(result.lora_pairs, path)
    return mt.save_motion_module(result.motion_state, path)


NODES = [TrainMotionModule]
