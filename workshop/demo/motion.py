"""Sampling and measuring the demo models' clips, shared by the demo-model tests and ``workshop/demo/strips.py``.

Clips are sampled through ComfyUI's own sampler with the pack's motion-model injection, on the narrow twins of the demo
files (``workshop.synthetic.demo.narrow_models``: the same outputs at a sixteenth of the cost, parity-tested), and
decoded with the demo checkpoint's VAE."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

SIZE = 64
FRAMES = 16
STEPS = 10
CFG = 5.0
SAMPLER, SCHEDULER = "ddim", "ddim_uniform"  # the shipped AnimateDiff workflows' choice


@dataclass
class DemoModels:
    model: object  # the narrow MODEL
    motion: object  # the narrow MOTION_MODEL
    clip: object
    vae: object
    texts: dict = field(default_factory=dict)  # prompt -> CONDITIONING, encoded once

    def encode(self, text: str):
        if text not in self.texts:
            self.texts[text] = self.clip.encode_from_tokens_scheduled(self.clip.tokenize(text))
        return self.texts[text]


def load(folder=None) -> DemoModels:
    import comfy.sd

    from ...animapose.motion.sampling.inflate import load_motion_model
    from ..fixtures.demo import DEMO_MODELS, demo_checkpoint, demo_motion_module
    from ..synthetic.demo import narrow_models

    folder = folder or DEMO_MODELS
    # the text encoder in fp32: ComfyUI's CPU default (fp16) is many times slower on CPUs
    wide, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(demo_checkpoint()),
                                                               te_model_options={"dtype": torch.float32})
    motion = load_motion_model(str(demo_motion_module()), "mm_sd_v15_v2.ckpt")
    model, narrow_motion = narrow_models(folder, wide, motion)
    return DemoModels(model, narrow_motion, clip, vae)


def sample(models: DemoModels, prompt: str, seed: int, motion: bool = True, motion_model=None, frames: int = FRAMES,
           steps: int = STEPS, context_length: int | None = None) -> torch.Tensor:
    """(frames, SIZE, SIZE, 3) in [0, 1]. ``context_length``: sample in context windows of that many frames (overlap
    4, the long-context workflow's settings)."""
    import comfy.sample

    from ...animapose.motion.sampling.context import set_context_windows
    from ...animapose.motion.sampling.inflate import apply_motion_model

    with torch.inference_mode():
        model = apply_motion_model(models.model, motion_model or models.motion).model if motion else models.model
        if context_length:
            model = set_context_windows(model, context_length, 4, "standard_uniform", 1, False, "pyramid")
        positive, negative = models.encode(prompt), models.encode("")
        latent = torch.zeros(frames, 4, SIZE // 8, SIZE // 8)
        noise = comfy.sample.prepare_noise(latent, seed)
        out = comfy.sample.sample(model, noise, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, seed=seed,
                                  disable_pbar=True)
        return models.vae.decode(out)[..., :3].float().clamp(0, 1)


def direction_run(models: DemoModels, motion: str = "moving right", clips: int = 8, steps: int = 60, rank: int = 8,
                  learning_rate: float = 1e-3, seed: int = 0, min_timestep: int = 0, mode: str = "motion_lora",
                  travel: tuple[float, float] | None = None):
    """A prepared run of the pack's motion trainer (``MotionRun``, the node's loss and schedule) on synthetic clips
    that all move one way, on copies of the narrow twins: a MotionLoRA on the demo module, or (``mode=
    "motion_module"``) the whole demo module finetuned; ``travel``: the clips' share of the frame (``make_clips``;
    (1, 1): edge to edge). ``train_run`` trains it. Build and train it under ``training_mode()``."""
    import copy

    from ...animapose.motion.sampling.placement import plan_slots
    from ...animapose.training import motion as mt
    from ..fixtures.demo import DEMO_MODELS
    from ..synthetic.demo import meta
    from ..synthetic.shapes import LINEAR_TRAVEL, make_clips
    from ..synthetic.tiny_models import encode_frames

    scale = meta(DEMO_MODELS)["vae_scale"]
    data = make_clips(clips, 1000 + seed, motion=motion, shapes=("circle", "square"),
                      travel=tuple(travel or LINEAR_TRAVEL))
    captions = sorted({c for _, c, _ in data})
    with torch.inference_mode():
        contexts = [models.encode(c)[0][0].float() for c in captions]
        empty = models.encode("")[0][0].float()
    contexts = [c.clone() for c in contexts]
    settings = mt.MotionTrainSettings(mode=mode, steps=steps, learning_rate=learning_rate, lora_rank=rank,
                                      frames=FRAMES, seed=seed, gradient_checkpointing=False,
                                      min_timestep=min_timestep)
    unet = copy.deepcopy(models.model.model.diffusion_model)
    motion_set = copy.deepcopy(models.motion.patcher.model).float()
    slots = plan_slots(unet, models.motion.info)
    # the demo module as it was: the probe's "base" for a finetuned module (a LoRA's base is its zeroed up factors)
    base_state = {k: v.clone() for k, v in motion_set.state_dict().items()} if mode == "motion_module" else None
    run = mt.MotionRun(unet, motion_set, slots, models.motion.info.norm_scope,
                       [encode_frames(v, scale) for v, _, _ in data], [captions.index(c) for _, c, _ in data],
                       contexts, empty.clone(), settings, torch.device("cpu"))
    run.base_state = base_state
    return run


def trained_motion(models: DemoModels, run, name: str):
    """A MOTION_MODEL (narrow, like ``models.motion``) holding what ``run`` has trained so far: the LoRA as weight
    patches on the demo module, or the finetuned module itself."""
    import copy

    import comfy.model_patcher

    from ...animapose.motion.sampling.inflate import MotionModel
    from ...animapose.training import motion as mt

    if run.settings.mode == "motion_lora":
        return mt.motion_model_with_lora(models.motion, run.lora_pairs(), name)
    base = models.motion.patcher
    modules = copy.deepcopy(base.model)
    dtype = next(modules.parameters()).dtype
    modules.load_state_dict({k: v.to(dtype) for k, v in run.motion_state().items()})
    patcher = comfy.model_patcher.ModelPatcher(modules, load_device=base.load_device,
                                               offload_device=base.offload_device)
    return MotionModel(patcher, models.motion.info, name)


@torch.no_grad()
def direction_probe(run, timesteps=(100, 300, 500, 700, 850, 950), clips: int = 12, seed: int = 5000) -> list[dict]:
    """How much a trained direction run's denoiser prefers its direction: the ε-MSE on held-out clips that move the
    run's way and on the same clips played backwards (same noise, the first caption's tokens), as trained ("lora": the
    LoRA, or the finetuned module) and as the demo module was ("base": the LoRA's ``up`` factors zeroed, or the
    module's starting weights). Per timestep: [forward, reversed, (reversed - forward) / forward in %] for both; a
    direction-aware denoiser has a clearly positive last figure."""
    from ..fixtures.demo import DEMO_MODELS
    from ..synthetic.demo import meta
    from ..synthetic.shapes import make_clips
    from ..synthetic.tiny_models import encode_frames

    scale = meta(DEMO_MODELS)["vae_scale"]
    latents = [encode_frames(v, scale)[:FRAMES].float() for v, _, _ in make_clips(clips, seed, motion="moving right",
                                                                                   shapes=("circle", "square"))]
    trained = run.motion_state()
    base = run.base_state if run.base_state is not None else \
        {k: torch.zeros_like(v) if k.endswith(".up") else v for k, v in trained.items()}

    def use(lora_on: bool):
        run.motion_set.load_state_dict(trained if lora_on else base)

    context = run.contexts[0].expand(FRAMES, -1, -1)
    rows, generator = [], torch.Generator().manual_seed(seed)
    for t in timesteps:
        noises = [torch.randn(x.shape, generator=generator) for x in latents]
        frames_t = torch.full((FRAMES,), t)
        row = {"t": t}
        for name, lora_on in (("base", False), ("lora", True)):
            use(lora_on)
            forward, backward = (sum(float(run.noise_loss(x.flip(0) if reverse else x, frames_t, n, context))
                                     for x, n in zip(latents, noises)) / len(latents) for reverse in (False, True))
            row[name] = [round(forward, 5), round(backward, 5), round((backward - forward) / forward * 100, 2)]
        rows.append(row)
    use(True)
    return rows
