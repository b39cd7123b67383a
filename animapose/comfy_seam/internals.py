"""Every ComfyUI internal the pack uses: why, what newer ComfyUI changed, how the pack adapts, which upstream source
was read. ``docs/compatibility.md`` carries this table (``markdown_table``); tests compare both with the code.

A row's ``name`` is the dotted name the code uses (``comfy.utils.ProgressBar``), ``ModelPatcher.<method>`` for the
patcher API called on MODEL values, or ``<dict>["<key>"]`` for keys of ComfyUI's option dictionaries. ``source`` is a
key of ``SOURCES``: what was read to fill ``newer``. Pure data; imports nothing from ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass

# What was read. "0.3.75" is the tree the tests run (scripts/provision.sh); the others were read with the project's
# search tool from the stored public repositories (commit of the stored file version).
SOURCES = {
    "0.3.75": "ComfyUI 0.3.75 (the tested tree, $AP_HOME/comfyui); nothing newer re-read for this row (the name "
              "exists in 0.3.64, Comfy-Org/ComfyUI @a125cd84, as every comfy.* name here does)",
    "ops": "Comfy-Org/ComfyUI comfy/ops.py @0271a469 (2026 tree with dynamic VRAM, comfy_aimdo)",
    "patcher": "Comfy-Org/ComfyUI comfy/model_patcher.py @08d0e510 (ModelPatcher, ModelPatcherDynamic)",
    "windows": "comfyanonymous/ComfyUI comfy/context_windows.py @0258521e (with IndexListCallbacks.RESIZE_COND_ITEM)",
    "lora": "Comfy-Org/ComfyUI comfy/weight_adapter/lora.py @6f98b150",
    "guider": "comfy_extras/nodes_custom_sampler.py Guider_DualCFG, three stored versions (2025-2026)",
    "memory": "comfy/model_management.py load_models_gpu, stored versions up to 2026 (signature only)",
    "schema": "comfy_api/latest/_io.py Schema @004b1b5b and shared/research/comfyui_2026.md (search_aliases, v0.11)",
}


@dataclass(frozen=True)
class Internal:
    name: str
    why: str
    newer: str
    adapt: str
    source: str


def _rows(*rows: tuple[str, str, str, str, str]) -> list[Internal]:
    return [Internal(*r) for r in rows]


SAME = "unchanged in the source read"
NONE = "none needed"

INTERNALS = _rows(
    # -- model patcher API (on MODEL values) ----------------------------------------------------------------------
    ("comfy.model_patcher.ModelPatcher", "own patchers for motion modules, encoders, trained copies",
     "ModelPatcherDynamic (dynamic VRAM) subclasses it; is_dynamic() tells them apart", NONE, "patcher"),
    ("ModelPatcher.clone", "never mutate an input MODEL: every Apply works on a clone",
     "clone(disable_dynamic=False, ...) gained keywords; plain clone() is unchanged", NONE, "patcher"),
    ("ModelPatcher.set_injections", "insert the motion modules into the UNet (PatcherInjection)",
     "still a dict of PatcherInjection lists; ModelPatcherDynamic injects on exit of use_ejected",
     "InsertionRecord honours inject/eject only inside a run; the run guard (point 5) fails a run whose modules "
     "were never called", "patcher"),
    ("ModelPatcher.set_attachments", "per-patcher state that a clone must not share (InsertionRecord, markers)",
     SAME, NONE, "patcher"),
    ("ModelPatcher.get_attachment", "read that state back", SAME, NONE, "patcher"),
    ("ModelPatcher.attachments", "pick a free key for a chained motion model", SAME, NONE, "patcher"),
    ("ModelPatcher.injections", "pick a free key for a chained motion model", SAME, NONE, "patcher"),
    ("ModelPatcher.additional_models", "pick a free key for a chained motion model", SAME, NONE, "patcher"),
    ("ModelPatcher.add_callback_with_key", "insert at ON_PRE_RUN, remove at ON_CLEANUP", SAME, NONE, "patcher"),
    ("ModelPatcher.remove_callbacks_with_key", "one callback pair for all chained motion models", SAME, NONE,
     "patcher"),
    ("ModelPatcher.add_wrapper_with_key", "per-call hooks: frame counts, controls, encoders, output checks", SAME,
     NONE, "patcher"),
    ("ModelPatcher.remove_wrappers_with_key", "a second Apply of an add-on replaces the first", SAME, NONE,
     "patcher"),
    ("ModelPatcher.set_additional_models", "motion modules and encoders load with the UNet", SAME, NONE, "patcher"),
    ("ModelPatcher.set_model_forward_timestep_embed_patch", "the injection point that calls every MotionModule",
     SAME, "the run guard fails the run if the patch is bypassed", "patcher"),
    ("ModelPatcher.add_object_patch", "AnimateDiff's beta schedule as model_sampling", SAME, NONE, "patcher"),
    ("ModelPatcher.get_model_object", "read model_sampling", SAME, NONE, "patcher"),
    ("ModelPatcher.add_patches", "motion LoRAs and trained deltas as weight patches", SAME, NONE, "patcher"),
    ("ModelPatcher.model_options", "context handler, transformer_options patches", SAME, NONE, "patcher"),
    ("ModelPatcher.load_device", "where a patcher computes", SAME, NONE, "patcher"),
    ("ModelPatcher.offload_device", "where a patcher rests", SAME, NONE, "patcher"),
    ("comfy.patcher_extension.PatcherInjection", "the injection record ComfyUI calls on load/unload", SAME, NONE,
     "patcher"),
    ("comfy.patcher_extension.CallbacksMP", "ON_PRE_RUN / ON_CLEANUP", SAME, NONE, "patcher"),
    ("comfy.patcher_extension.WrappersMP", "OUTER_SAMPLE, SAMPLER_SAMPLE, DIFFUSION_MODEL, APPLY_MODEL", SAME, NONE,
     "patcher"),
    ("comfy.patcher_extension.add_wrapper_with_key", "the DreamPose guider's conditioning check on its own options",
     SAME, NONE, "0.3.75"),
    ("comfy.model_patcher.create_model_options_clone", "the DreamPose guider's own copy of the model options",
     SAME, NONE, "patcher"),
    # -- option dictionaries ------------------------------------------------------------------------------------
    ('transformer_options["patches"]["forward_timestep_embed_patch"]',
     "ComfyUI hands every MotionModule in a TimestepEmbedSequential to the first matching patch", SAME,
     "the run guard counts the calls and fails the run if they are missing", "0.3.75"),
    ('transformer_options["cond_or_uncond"]', "frames per chunk of a batched UNet call", SAME, NONE, "0.3.75"),
    ('transformer_options["sigmas"]', "a stage's step range and keyframes", SAME, NONE, "0.3.75"),
    ('transformer_options["sample_sigmas"]', "the context handler's progress per window", SAME, NONE, "windows"),
    ('transformer_options["context_window"]', "which frames a windowed call holds", SAME, NONE, "windows"),
    ('model_options["context_handler"]', "context windows on the frame axis", SAME, NONE, "windows"),
    # -- model management ---------------------------------------------------------------------------------------
    ("comfy.model_management.load_models_gpu", "load models under ComfyUI's memory management",
     "ModelPatcherDynamic asserts on force_patch_weights (dynamic VRAM); signature otherwise kept",
     "comfy_seam.weights_patcher: a patcher that must bake weights is cloned with disable_dynamic=True "
     "when is_dynamic()", "memory"),
    ("comfy.model_management.load_model_gpu", "load the B/32 CLIP vision model", SAME, NONE, "0.3.75"),
    ("comfy.model_management.loaded_models", "SparseCtrl loads alongside what is in use", SAME, NONE, "0.3.75"),
    ("comfy.model_management.current_loaded_models", "residency of lazily loaded motion stages",
     "not re-read upstream", "none: residency unloads an entry the way free_memory does; the comfy tier's "
     "residency tests break if the layout changes", "0.3.75"),
    ("comfy.model_management.get_torch_device", "load device of the pack's patchers", SAME, NONE, "0.3.75"),
    ("comfy.model_management.unet_offload_device", "offload device of the pack's patchers", SAME, NONE, "0.3.75"),
    ("comfy.model_management.unet_dtype", "default storage dtype of motion modules", SAME, NONE, "0.3.75"),
    ("comfy.model_management.unet_manual_cast", "SparseCtrl's compute dtype", SAME, NONE, "0.3.75"),
    ("comfy.model_management.text_encoder_device", "the B/32 CLIP vision model's device", SAME, NONE, "0.3.75"),
    ("comfy.model_management.text_encoder_offload_device", "the B/32 CLIP vision model's offload device", SAME,
     NONE, "0.3.75"),
    ("comfy.model_management.intermediate_device", "where outputs leave the device", SAME, NONE, "0.3.75"),
    ("comfy.model_management.cast_to_device", "SparseCtrl's hint to the compute device", SAME, NONE, "0.3.75"),
    ("comfy.model_management.soft_empty_cache", "free memory after training", SAME, NONE, "0.3.75"),
    ("comfy.model_management.throw_exception_if_processing_interrupted", "Cancel between frames and steps",
     SAME, NONE, "0.3.75"),
    ("comfy.model_management.free_memory", "room for DensePose on the device", SAME, NONE, "0.3.75"),
    ("comfy.model_management.processing_interrupted", "Cancel cancels the Ray cluster's frame tasks",
     SAME, NONE, "0.3.75"),
    ("comfy.model_management.unload_all_models", "a cluster run sends the model's weights unpatched",
     SAME, NONE, "0.3.75"),
    ("comfy.model_management.__file__", "where ComfyUI is, for the Ray workers' PYTHONPATH", SAME, NONE, "0.3.75"),
    ("comfy.cli_args.args", "Ray workers start with the ComfyUI process's command-line settings", SAME, NONE,
     "0.3.75"),
    ("comfy.model_management.should_use_fp16", "DensePose's precision", SAME, NONE, "0.3.75"),
    # -- ops, casting, LoRA -------------------------------------------------------------------------------------
    ("comfy.ops.manual_cast", "the pack's layers cast weights to the activations' dtype (fp8 storage works)",
     "forward goes through CastBiasWeightContext(offloadable=True): async offload and dynamic VRAM included",
     "none needed: the pack uses the layer classes and never calls cast_bias_weight itself", "ops"),
    ("comfy.ops.disable_weight_init", "build UNets and LoRA layers without random init",
     "with dynamic VRAM (aimdo) Linear starts with weight None until a state dict is loaded",
     "comfy_seam.module_shapes reads such a layer's shape from in/out_features; training copies are "
     "built on the meta device and loaded with assign=True", "ops"),
    ("comfy.ops.pick_operations", "SparseCtrl's layer classes",
     "pick_operations(weight_dtype, compute_dtype, load_device=None, ...): positional use unchanged", NONE, "ops"),
    ("comfy.ops.cast_bias_weight", "not called by the pack (listed because newer ComfyUI changed it)",
     "returns (weight, bias, offload_stream) when offloadable=True (0.17+), two values otherwise",
     "none needed: no call site; a test fails if one appears outside the seam", "ops"),
    ("comfy.weight_adapter.LoRAAdapter", "motion LoRAs as unmerged weight patches",
     "LoRAAdapter(loaded_keys, (up, down, alpha, mid, dora_scale, reshape)) unchanged; calculate_weight logs "
     "and skips a shape mismatch", "add_motion_lora refuses layers the motion model lacks and layers whose shape "
     "differs, before patching", "lora"),
    ("comfy.lora.calculate_weight", "merge weight patches into training copies", SAME, NONE, "0.3.75"),
    # -- sampling -----------------------------------------------------------------------------------------------
    ("comfy.samplers.calc_cond_batch", "not called by the pack; Guider_DualCFG and the context handler call it",
     "results read by index (0.17+)", "none needed: the pack never unpacks its result", "guider"),
    ("comfy.sample.prepare_noise", "FreeNoise draws ComfyUI's own noise", SAME, NONE, "0.3.75"),
    ("comfy.sample.fix_empty_latent_channels", "DreamPose latents as the sampler nodes prepare them", SAME, NONE,
     "0.3.75"),
    ("comfy_extras.nodes_custom_sampler.Guider_DualCFG", "DreamPose's dual CFG is ComfyUI's own guider",
     "set_cfg(cfg1, cfg2, nested=False); predict_noise reads calc_cond_batch by index",
     "the pack passes nested=False by keyword and only wraps predict_noise", "guider"),
    ("comfy.model_sampling.EPS", "DreamPose training needs an epsilon model", SAME, NONE, "0.3.75"),
    ("comfy.model_sampling.V_PREDICTION", "refuse v-prediction for DreamPose training", SAME, NONE, "0.3.75"),
    ("comfy.model_sampling.ModelSamplingDiscrete", "AnimateDiff's beta schedules", SAME, NONE, "0.3.75"),
    ("comfy.model_base.ModelType", "EPS / V_PREDICTION of a schedule", SAME, NONE, "0.3.75"),
    ("comfy_extras.nodes_model_advanced.LCM", "AnimateLCM's sampling", SAME, NONE, "0.3.75"),
    ("comfy_extras.nodes_model_advanced.ModelSamplingDiscreteDistilled", "AnimateLCM's sampling", SAME, NONE,
     "0.3.75"),
    ("comfy.utils.ProgressBar", "progress per window, frame batch, training step", SAME, NONE, "0.3.75"),
    # -- context windows ----------------------------------------------------------------------------------------
    ("comfy.context_windows.IndexListContextHandler", "frame-axis windows (subclassed: per-frame conds, hints)",
     "new keywords (freenoise, cond_retain_index_list, split_conds_to_windows) with defaults; set_step keeps the "
     "last step on sub-steps; get_resized_cond now slices per-frame conds on dim 0 itself",
     "overrides keep their signatures; a cond already sliced to the window is left alone (its length no longer "
     "equals the frame count)", "windows"),
    ("comfy.context_windows.IndexListCallbacks", "not used: RESIZE_COND_ITEM lets packs slice their own conds",
     "resize_cond_item(cond_key, cond_value, window, x_in, device, new_cond_item) callback",
     "none needed: the pack's conds are CONDRegular/CONDNoiseShape, sliced by its get_resized_cond", "windows"),
    ("comfy.context_windows.ContextSchedules", "the schedule choices", SAME, NONE, "windows"),
    ("comfy.context_windows.ContextFuseMethods", "the fuse choices", SAME, NONE, "windows"),
    ("comfy.context_windows.get_matching_context_schedule", "schedule by name", SAME, NONE, "windows"),
    ("comfy.context_windows.get_matching_fuse_method", "fuse method by name", SAME, NONE, "windows"),
    ("comfy.context_windows.create_prepare_sampling_wrapper", "memory estimate for one window", SAME, NONE,
     "windows"),
    # -- checkpoints and model classes --------------------------------------------------------------------------
    ("comfy.sd.VAE", "DreamPose's VAE as a native VAE", SAME, NONE, "0.3.75"),
    ("comfy.sd.load_diffusion_model_state_dict", "DreamPose's UNet as a native MODEL", SAME, NONE, "0.3.75"),
    ("comfy.supported_models.SD15", "DreamPose's UNet config", SAME, NONE, "0.3.75"),
    ("comfy.diffusers_convert.convert_vae_state_dict", "DreamPose's diffusers VAE keys", SAME, NONE, "0.3.75"),
    ("comfy.diffusers_convert.vae_conversion_map", "the reverse mapping when saving", SAME, NONE, "0.3.75"),
    ("comfy.utils.unet_to_diffusers", "diffusers UNet key names", SAME, NONE, "0.3.75"),
    ("comfy.utils.common_upscale", "resize reference latents and hints", SAME, NONE, "0.3.75"),
    ("comfy.clip_vision.Output", "B/32 CLIP vision output as ComfyUI's type", SAME, NONE, "0.3.75"),
    ("comfy.latent_formats.SD15", "SparseCtrl's latent format", SAME, NONE, "0.3.75"),
    ("comfy.controlnet.ControlNet", "SparseCtrl is a ComfyUI ControlNet", SAME, NONE, "0.3.75"),
    ("comfy.cldm.cldm.ControlNet", "SparseCtrl's encoder builds on it", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", "DreamPose's 14-channel UNet", SAME, NONE,
     "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.openaimodel.TimestepEmbedSequential", "SparseCtrl's blocks", SAME, NONE,
     "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.openaimodel.ResBlock", "where motion modules go", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.openaimodel.Upsample", "where motion modules go", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.attention.SpatialTransformer", "where motion modules go", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.util.timestep_embedding", "SparseCtrl's time embedding", SAME, NONE,
     "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.model.AttnBlock", "VAE decoder blocks to train", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.model.ResnetBlock", "VAE decoder blocks to train", SAME, NONE, "0.3.75"),
    ("comfy.ldm.modules.diffusionmodules.model.Upsample", "VAE decoder blocks to train", SAME, NONE, "0.3.75"),
    ("comfy.taesd.taesd.Block", "TAESD decoder blocks to train", SAME, NONE, "0.3.75"),
    # -- training helpers ---------------------------------------------------------------------------------------
    ("comfy_extras.nodes_train.patch", "gradient checkpointing with ComfyUI's LoRA-trainer helper", SAME, NONE,
     "0.3.75"),
    ("comfy_extras.nodes_train.find_all_highest_child_module_with_forward", "what checkpointing wraps", SAME,
     NONE, "0.3.75"),
    # -- used by the node files directly (nodes/) ----------------------------------------------------------------
    ("folder_paths.add_model_folder_path", "the pack's model folders (shared with AnimateDiff-Evolved)", SAME,
     NONE, "0.3.75"),
    ("folder_paths.folder_names_and_paths", "extensions of a model folder", SAME, NONE, "0.3.75"),
    ("folder_paths.get_filename_list", "combo lists of model files", SAME, NONE, "0.3.75"),
    ("folder_paths.get_folder_paths", "where a model folder lives", SAME, NONE, "0.3.75"),
    ("folder_paths.get_full_path", "resolve a chosen model file", SAME, NONE, "0.3.75"),
    ("folder_paths.get_input_directory", "pose archives and pictures in input/", SAME, NONE, "0.3.75"),
    ("folder_paths.models_dir", "comfyui_controlnet_aux's DensePose folder", SAME, NONE, "0.3.75"),
    ("folder_paths.supported_pt_extensions", "model file extensions", SAME, NONE, "0.3.75"),
    # -- node API (nodes/ only) ---------------------------------------------------------------------------------
    ("comfy_api.latest.io.Schema.search_aliases", "the words AnimateDiff-Evolved users type find the pack's nodes",
     "Schema field added in 0.11 (absent in 0.3.75)",
     "nodes/search_terms.py sets it only when io.Schema has the field", "schema"),
    ("comfy_api.latest.io.Schema.is_experimental", "training nodes are flagged as ComfyUI flags its own",
     "present since before 0.3.75", NONE, "schema"),
)


def names() -> list[str]:
    return [i.name for i in INTERNALS]


def markdown_table() -> str:
    """The table of ``docs/compatibility.md`` (between its ``internals`` markers)."""
    lines = ["| internal | why the pack needs it | newer ComfyUI | how the pack adapts | read |",
             "|---|---|---|---|---|"]
    for i in INTERNALS:
        cells = [f"`{i.name}`", i.why, i.newer, i.adapt, i.source]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Sources (`read`):", ""]
    lines += [f"- `{key}`: {text}" for key, text in SOURCES.items()]
    return "\n".join(lines) + "\n"
