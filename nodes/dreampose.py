"""DreamPose nodes: load the official files, condition on a subject photo and a DensePose UV sequence, guide with
dual classifier-free guidance, sample frames in batches and decode."""

from __future__ import annotations

import os

from comfy_api.latest import io

from ..animapose.dreampose.joint import FRAME_MODES
from ..animapose.dreampose.pipeline import FITS, MULTI_IMAGE, VALUE_RANGES, WINDOWS
from .common import (
    DREAMPOSE_CATEGORY,
    DREAMPOSE_FOLDER,
    PREFIX,
    PackNode,
    check_inputs,
    checked_output_name,
    full_path,
    node_errors,
    node_info,
    queue_check,
)

AdapterType = io.Custom("ANIMAPOSE_DREAMPOSE_ADAPTER")
PosesType = io.Custom("ANIMAPOSE_POSES")
CLIP_FOLDERS = ("clip_vision", DREAMPOSE_FOLDER)
# The pose folder the shipped workflows name (the demo and the tests put one there).
POSES_DEFAULT = "dreampose_poses"


def _files(folder: str) -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(folder)


def _of_kind(folders: tuple[str, ...], kind: str) -> list[str]:
    """The files of ``folders`` with those whose keys say ``kind`` first (a cheap header read, cached), so the
    UNet loader does not offer the VAE first; every file stays listed and the loader's own checks refuse a wrong one."""
    import folder_paths

    from ..animapose.dreampose.file_kinds import order_by_kind

    names = sorted({f for folder in folders for f in _files(folder)})
    paths = {}
    for name in names:
        path = next((p for p in (folder_paths.get_full_path(f, name) for f in folders) if p), None)
        if path:
            paths[name] = path
    return order_by_kind(names, paths, kind)


def _clip_choices() -> list[str]:
    from ..animapose.dreampose.file_kinds import CLIP_VISION

    return _of_kind(CLIP_FOLDERS, CLIP_VISION)


class LoadDreamPose(PackNode):
    DISPLAY = "Load DreamPose UNet + Adapter"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadDreamPose",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Loads DreamPose's UNet (official unet_epoch_*.pth: a diffusers SD1.4 UNet whose conv_in takes "
                         "14 channels, the last 10 being five frames of DensePose UV) as a native MODEL, and its "
                         "CLIP-VAE adapter (adapter_*.pth). Files from models/dreampose; .pth is read without running "
                         "pickled code; safetensors saved by 'Save DreamPose Model' load too."),
            inputs=[
                io.Combo.Input("unet_name", options=_of_kind((DREAMPOSE_FOLDER,), "unet"),
                               tooltip="DreamPose UNet, e.g. unet_epoch_20.pth (base) or a subject-finetuned one."),
                io.Combo.Input("adapter_name", options=_of_kind((DREAMPOSE_FOLDER,), "adapter"),
                               tooltip="The matching adapter, e.g. adapter_20.pth (vae2clip 1280->768, linear1 54->50)."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="DreamPose UNet as a MODEL; poses arrive as concat "
                                                                   "conditioning from 'DreamPose Pose Conditioning'."),
                     AdapterType.Output(display_name="adapter", tooltip="The CLIP-VAE embedding adapter.")],
        )

    @classmethod
    def execute(cls, unet_name, adapter_name) -> io.NodeOutput:
        from ..animapose.dreampose.checkpoint import load_unet, read_adapter

        with node_errors(cls.DISPLAY):
            model = load_unet(full_path(DREAMPOSE_FOLDER, unet_name, "unet_name"), "unet_name")
            adapter = read_adapter(full_path(DREAMPOSE_FOLDER, adapter_name, "adapter_name"), "adapter_name")
        return io.NodeOutput(model, adapter)


class LoadDreamPoseVAE(PackNode):
    DISPLAY = "Load DreamPose VAE"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadDreamPoseVAE",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Loads a DreamPose VAE (official vae_*.pth, a diffusers AutoencoderKL with the old attention "
                         "key names that current diffusers refuses) as a native VAE. Any SD1.x VAE also works with the "
                         "base model through ComfyUI's own VAE loader."),
            inputs=[io.Combo.Input("vae_name", options=_of_kind((DREAMPOSE_FOLDER,), "vae"),
                                   tooltip="VAE file in models/dreampose, e.g. a subject-finetuned vae_1499.pth.")],
            outputs=[io.Vae.Output(display_name="vae", tooltip="The VAE, for DreamPose conditioning and decoding.")],
        )

    @classmethod
    def execute(cls, vae_name) -> io.NodeOutput:
        from ..animapose.dreampose.checkpoint import read_vae

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(read_vae(full_path(DREAMPOSE_FOLDER, vae_name, "vae_name"), "vae_name"))


class LoadCLIPVisionB32(PackNode):
    DISPLAY = "Load DreamPose CLIP Vision (B/32)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadCLIPVisionB32",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Loads CLIP ViT-B/32 (openai/clip-vit-base-patch32), which DreamPose reads and ComfyUI's own "
                         "CLIP vision loader does not know, through transformers, as a native CLIP_VISION. Point it at "
                         "the model folder's weights file (config.json beside it) or a single weights file."),
            inputs=[io.Combo.Input("clip_name", options=_clip_choices(),
                                   tooltip="From models/clip_vision or models/dreampose, e.g. "
                                           "clip-vit-base-patch32/model.safetensors.")],
            outputs=[io.ClipVision.Output(display_name="clip_vision", tooltip="CLIP ViT-B/32 vision model.")],
        )

    @classmethod
    def execute(cls, clip_name) -> io.NodeOutput:
        import folder_paths

        from ..animapose.dreampose.pipeline import load_clip_b32

        with node_errors(cls.DISPLAY):
            path = next((p for p in (folder_paths.get_full_path(f, clip_name) for f in CLIP_FOLDERS) if p), None)
            if path is None:
                full_path(CLIP_FOLDERS[0], clip_name, "clip_name")
            folder = os.path.dirname(path)
            target = folder if os.path.isfile(os.path.join(folder, "config.json")) else path
            return io.NodeOutput(load_clip_b32(target, clip_name))


class DreamPoseImageConditioning(PackNode):
    DISPLAY = "DreamPose Image Conditioning"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseImageConditioning",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Turns the subject photo into DreamPose's cross-attention tokens: CLIP ViT-B/32 features (50 "
                         "tokens) and the photo's VAE latent pooled to 4 tokens, mixed by the adapter into 50 tokens. The "
                         "adapter is fixed to 640x512 (portrait) pictures, so the photo is letterboxed, cropped or "
                         "stretched to that size first. Also returns the official unconditional (black picture) tokens."),
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="From 'Load DreamPose CLIP Vision (B/32)'."),
                io.Vae.Input("vae", tooltip="The DreamPose VAE (or the SD1.4 VAE for the base model)."),
                AdapterType.Input("adapter", tooltip="From 'Load DreamPose UNet + Adapter'."),
                io.Image.Input("image", tooltip="Subject photo; a batch of several photos is combined (see "
                                                "multi_image). Any size: it is fitted into 640x512."),
                io.Combo.Input("fit", options=FITS, default="letterbox",
                               tooltip="How a photo of another aspect ratio becomes 640x512: letterbox (pad, keep "
                                       "everything), crop (fill, cut the edges) or stretch."),
                io.Combo.Input("value_range", options=VALUE_RANGES, default="clean",
                               tooltip="clean: the [0,1] pictures and poses the checkpoints were trained on. legacy: "
                                       "the official test.py's values (0-255 VAE input, poses in [-1,1], per-frame "
                                       "min-max stretch of the output), for parity with its outputs. Chosen here once; "
                                       "pose conditioning and decoding follow it."),
                io.Combo.Input("multi_image", options=MULTI_IMAGE, default="average",
                               tooltip="With several photos: average their tokens, or use the first only."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip="The subject's image tokens."),
                     io.Conditioning.Output(display_name="negative", tooltip="Unconditional tokens (black picture).")],
        )

    @classmethod
    def execute(cls, clip_vision, vae, adapter, image, fit, value_range, multi_image) -> io.NodeOutput:
        from ..animapose.dreampose.pipeline import image_conditioning

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(*image_conditioning(clip_vision, vae, adapter, image, fit, value_range, multi_image))


def _pose_sources() -> list[str]:
    import folder_paths

    from ..animapose.dreampose.pose_sources import list_pose_sources

    return list_pose_sources(folder_paths.get_input_directory())


class LoadDensePoseUV(PackNode):
    DISPLAY = "Load DensePose UV Poses"

    @classmethod
    def define_schema(cls):
        sources = _pose_sources()
        return io.Schema(
            node_id=PREFIX + "LoadDensePoseUV",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Loads a DensePose UV sequence in DreamPose's layout: per-frame .npy files of shape (2, H, W) "
                         "(U then V in [0,1], 0 on the background), e.g. frame_0_densepose.npy, ordered by frame "
                         "number, from a folder or a .zip archive in ComfyUI's input folder. The files are checked "
                         "when the prompt is queued, before anything runs."),
            inputs=[io.Combo.Input("folder", options=sources,
                                   default=POSES_DEFAULT if POSES_DEFAULT in sources else None,
                                   tooltip="A folder of frame_N_densepose.npy files or a .zip of them, inside ComfyUI's "
                                           "input folder (press R after adding one; the button below uploads a "
                                           ".zip). Paths outside the input folder, and links leading out of it, are "
                                           "refused.")],
            outputs=[PosesType.Output(display_name="poses", tooltip="The UV pose sequence."),
                     io.Image.Output(display_name="preview", tooltip="The poses as pictures (U red, V green).")],
        )

    @classmethod
    def validate_inputs(cls, folder):
        # Runs when the prompt is queued: a bad pick fails before any model is loaded or any step is sampled.
        # (ComfyUI skips its own combo check for inputs named here, so the list check is repeated.)
        import folder_paths

        from ..animapose.dreampose.pose_sources import check_pose_source, resolve_pose_source
        from ..animapose.errors import AnimaPoseError

        try:
            # the path guard first, so an escape attempt is named as such rather than as "not in the list"
            resolve_pose_source(folder_paths.get_input_directory(), folder, "folder")
            check_inputs(cls, {"folder": folder})
            check_pose_source(folder_paths.get_input_directory(), folder, "folder")
        except AnimaPoseError as e:
            return str(e.for_node(cls.DISPLAY))
        return True

    @classmethod
    def execute(cls, folder) -> io.NodeOutput:
        import folder_paths

        from ..animapose.dreampose.pipeline import PoseSequence
        from ..animapose.dreampose.pose_sources import load_pose_source

        with node_errors(cls.DISPLAY):
            poses = PoseSequence(load_pose_source(folder_paths.get_input_directory(), folder, "folder"), folder)
        return io.NodeOutput(poses, poses.preview(), ui=node_info(
            cls.DISPLAY, f"{poses.frames} frames of UV poses, {poses.source_hw[1]}x{poses.source_hw[0]}"))

    @classmethod
    def fingerprint_inputs(cls, folder):
        # re-run when the folder's files (or the archive) change, not only when the name does
        import folder_paths

        from ..animapose.dreampose.pose_sources import resolve_pose_source
        from ..animapose.errors import AnimaPoseError

        try:
            path = resolve_pose_source(folder_paths.get_input_directory(), folder)
            if os.path.isfile(path):
                st = os.stat(path)
                return f"{folder}:{st.st_size}:{st.st_mtime_ns}"
            return str(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(path)))
        except (AnimaPoseError, OSError):
            return folder


class PosesFromImages(PackNode):
    DISPLAY = "Poses From DensePose UV Images"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PosesFromImages",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Reads a DensePose UV sequence from an IMAGE batch that carries U in the red and V in the green "
                         "channel (blue empty). Colour-mapped DensePose part images and OpenPose/DWPose skeletons are "
                         "refused: they hold part indices or keypoints, not the UV coordinates DreamPose needs."),
            inputs=[io.Image.Input("images", tooltip="One picture per frame, U in red, V in green, blue 0.")],
            outputs=[PosesType.Output(display_name="poses", tooltip="The UV pose sequence.")],
        )

    @classmethod
    def execute(cls, images) -> io.NodeOutput:
        from ..animapose.dreampose.pipeline import PoseSequence
        from ..animapose.dreampose.poses import uv_from_images

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(PoseSequence(uv_from_images(images, "images"), "images"))


class PoseConditioning(PackNode):
    DISPLAY = "DreamPose Pose Conditioning"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PoseConditioning",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Gives every frame i the poses of frames i-2..i+2 (10 UV channels at latent size) as concat "
                         "conditioning, builds the three conditionings of dual CFG (image+pose, image only, "
                         "unconditional) and the latent: one row per pose frame, empty or started from a key frame."),
            inputs=[
                io.Conditioning.Input("positive", tooltip="Image tokens from 'DreamPose Image Conditioning'."),
                io.Conditioning.Input("negative", tooltip="Unconditional tokens from the same node."),
                PosesType.Input("poses", tooltip="The driving UV pose sequence; its length is the frame count."),
                io.Int.Input("width", default=512, min=64, max=2048, step=8,
                             tooltip="Frame width in pixels (multiple of 8; DreamPose was trained at 512x640)."),
                io.Int.Input("height", default=640, min=64, max=2048, step=8,
                             tooltip="Frame height in pixels (multiple of 8)."),
                io.Combo.Input("fit", options=FITS, default="letterbox",
                               tooltip="How poses of another aspect ratio fill the frame; decoding maps the frames back "
                                       "to the poses' size the same way."),
                io.Combo.Input("window", options=WINDOWS, default="clamp",
                               tooltip="Poses for i-2..i+2 beyond the sequence ends: clamp to the nearest existing "
                                       "frame, or official (test.py: use frame i's own pose); single puts frame "
                                       "i's pose in all five slots (the paper's 1-frame ablation)."),
                io.Vae.Input("vae", optional=True, tooltip="Needed only with key_frame."),
                io.Image.Input("key_frame", optional=True,
                               tooltip="Optional: start every frame from this picture's latent (the official img2img "
                                       "start at full strength, which keeps a little of the key frame's colours)."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip="Image + pose."),
                     io.Conditioning.Output(display_name="image_only", tooltip="Image + zero pose."),
                     io.Conditioning.Output(display_name="negative", tooltip="Unconditional image + zero pose."),
                     io.Latent.Output(display_name="latent", tooltip="One latent row per frame.")],
        )

    @classmethod
    def execute(cls, positive, negative, poses, width, height, fit, window, vae=None, key_frame=None) -> io.NodeOutput:
        from ..animapose.dreampose.pipeline import pose_conditioning

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(*pose_conditioning(positive, negative, poses, width, height, fit, window, vae,
                                                    key_frame))


class DreamPoseGuider(PackNode):
    DISPLAY = "DreamPose Guider (dual CFG)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseGuider",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("DreamPose's dual classifier-free guidance: eps = e(0,0) + s_I*(e(I,0) - e(0,0)) + "
                         "s_p*(e(I,p) - e(I,0)), the three evaluations batched into one UNet call. It is ComfyUI's own "
                         "DualCFGGuider with cfg_cond2_negative = image_cfg and cfg_conds = pose_cfg, so every sampler "
                         "and scheduler works."),
            inputs=[
                io.Model.Input("model", tooltip="The DreamPose MODEL."),
                io.Conditioning.Input("positive", tooltip="Image + pose, from 'DreamPose Pose Conditioning'."),
                io.Conditioning.Input("image_only", tooltip="Image + zero pose."),
                io.Conditioning.Input("negative", tooltip="Unconditional image + zero pose."),
                io.Float.Input("image_cfg", default=8.0, min=0.0, max=30.0, step=0.1,
                               tooltip="s_I: how strongly frames follow the subject photo (the paper's demo uses 8)."),
                io.Float.Input("pose_cfg", default=3.0, min=0.0, max=30.0, step=0.1,
                               tooltip="s_p: how strongly frames follow the pose (the paper's demo uses 3)."),
            ],
            outputs=[io.Guider.Output(display_name="guider", tooltip="For SamplerCustomAdvanced or 'AnimaPose "
                                                                      "DreamPose Sampler'.")],
        )

    @classmethod
    def execute(cls, model, positive, image_only, negative, image_cfg, pose_cfg) -> io.NodeOutput:
        from ..animapose.dreampose.guidance import dreampose_guider

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(dreampose_guider(model, positive, image_only, negative, image_cfg, pose_cfg))


class SharedNoise(PackNode):
    DISPLAY = "DreamPose Shared Noise"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "SharedNoise",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("The same initial noise for every frame (the official DreamPose draws it once per video), which "
                         "keeps independently generated frames more alike. Use RandomNoise for per-frame noise."),
            inputs=[io.Int.Input("noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                                 tooltip="Seed of the one noise picture shared by all frames.")],
            outputs=[io.Noise.Output(display_name="noise", tooltip="NOISE for SamplerCustomAdvanced or the DreamPose "
                                                                    "sampler.")],
        )

    @classmethod
    def execute(cls, noise_seed) -> io.NodeOutput:
        from ..animapose.dreampose.pipeline import SharedNoise as Shared

        return io.NodeOutput(Shared(noise_seed))


class DreamPoseSampler(PackNode):
    DISPLAY = "DreamPose Sampler"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseSampler",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Samples a pose video frame-batch by frame-batch: the same result as SamplerCustomAdvanced on "
                         "all frames at once (frames are independent in DreamPose), but memory stays that of one batch. "
                         "One progress bar over all batches; Cancel stops between batches with nothing left patched. "
                         "frame_mode joint samples the video as one clip, for a DreamPose MODEL with an AnimateDiff "
                         "motion module."),
            inputs=[
                io.Noise.Input("noise", tooltip="RandomNoise (per-frame) or 'DreamPose Shared Noise'."),
                io.Guider.Input("guider", tooltip="From 'DreamPose Guider (dual CFG)'."),
                io.Sampler.Input("sampler", tooltip="Any sampler, e.g. from KSamplerSelect."),
                io.Sigmas.Input("sigmas", tooltip="Any schedule, e.g. from BasicScheduler."),
                io.Latent.Input("latent", tooltip="From 'DreamPose Pose Conditioning'."),
                io.Int.Input("frames_per_batch", default=4, min=1, max=256,
                             tooltip="Frames per UNet call (each costs three evaluations for dual CFG). Larger "
                                     "batches keep a GPU busier, until memory runs out; on the CPU they gain "
                                     "little at 640x512 (docs/benchmarks.md), so 1 saves memory there."),
                io.Combo.Input("frame_mode", options=FRAME_MODES, default="per_frame", optional=True,
                               tooltip="per_frame: frames drawn independently in batches (DreamPose as published). "
                                       "joint: the whole video in one run, as one clip for an AnimateDiff motion "
                                       "module applied to the DreamPose MODEL (frames_per_batch is not used; context "
                                       "windows on the MODEL split long videos). A MODEL with a motion module needs "
                                       "joint."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The sampled frames.")],
        )

    @classmethod
    def execute(cls, noise, guider, sampler, sigmas, latent, frames_per_batch, frame_mode="per_frame") -> io.NodeOutput:
        from ..animapose.dreampose.joint import check_frame_mode, sample_joint
        from ..animapose.dreampose.pipeline import sample_frames

        with node_errors(cls.DISPLAY):
            if check_frame_mode(guider, frame_mode) == "joint":
                return io.NodeOutput(sample_joint(guider, sampler, sigmas, noise, latent))
            return io.NodeOutput(sample_frames(guider, sampler, sigmas, noise, latent, frames_per_batch))


class DreamPoseDecode(PackNode):
    DISPLAY = "DreamPose Decode"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseDecode",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Decodes DreamPose frames: maps them from the value range of the run (clean: the [0,1] picture "
                         "space the checkpoints generate in; legacy: test.py's per-frame min-max stretch) and undoes the "
                         "frame fit back to the poses' size."),
            inputs=[io.Vae.Input("vae", tooltip="The DreamPose VAE."),
                    io.Latent.Input("samples", tooltip="Sampled frames from the DreamPose sampler.")],
            outputs=[io.Image.Output(display_name="images", tooltip="The video frames.")],
        )

    @classmethod
    def execute(cls, vae, samples) -> io.NodeOutput:
        from ..animapose.dreampose.pipeline import decode

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(decode(vae, samples))


class SaveDreamPose(PackNode):
    DISPLAY = "Save DreamPose Model"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "SaveDreamPose",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Saves a DreamPose set (UNet, adapter and VAE, e.g. after subject finetuning) as safetensors in "
                         "the official key layouts into models/dreampose, where the loaders list them."),
            inputs=[io.Model.Input("model", tooltip="DreamPose MODEL (weight patches are baked in)."),
                    AdapterType.Input("adapter", tooltip="Its adapter."),
                    io.Vae.Input("vae", optional=True, tooltip="Optional: its VAE."),
                    io.String.Input("filename_prefix", default="dreampose_subject",
                                    tooltip="Files become <prefix>_00001_unet/_adapter/_vae.safetensors; the counter "
                                            "grows with every save, so nothing is overwritten. Letters, digits, "
                                            "spaces and _ - . + ( ); sub/prefix saves into a sub-folder of "
                                            "models/dreampose. Checked when queued, before anything runs.")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix):
        # Runs when the prompt is queued: a prefix that cannot be saved fails before a finetuning upstream runs.
        return queue_check(cls, {}, lambda: filename_prefix is None or _checked_prefix(filename_prefix))

    @classmethod
    def execute(cls, model, adapter, filename_prefix, vae=None) -> io.NodeOutput:
        import folder_paths

        from ..animapose.dreampose.checkpoint import save_dreampose_set

        with node_errors(cls.DISPLAY):
            prefix = _checked_prefix(filename_prefix)
            directory, *others = folder_paths.get_folder_paths(DREAMPOSE_FOLDER)
            paths = save_dreampose_set(model, adapter, vae, directory, prefix, others)
        return io.NodeOutput(ui=node_info(cls.DISPLAY, "Saved:\n" + "\n".join(str(p) for p in paths)))


def _checked_prefix(filename_prefix) -> str:
    return checked_output_name(filename_prefix, "filename_prefix", DREAMPOSE_FOLDER)


NODES = [LoadDreamPose, LoadDreamPoseVAE, LoadCLIPVisionB32, DreamPoseImageConditioning, LoadDensePoseUV,
         PosesFromImages, PoseConditioning, DreamPoseGuider, SharedNoise, DreamPoseSampler, DreamPoseDecode,
         SaveDreamPose]
