"""The two sides of the DreamPose benchmark, shared by ``bench_dreampose``, ``bench_precision`` and ``bench_gpu``:
the job description, the inputs both sides receive (adapter tokens, pose windows, shared noise), the pack's sampling
(the DreamPose guider and ``sample_frames``) and the official-style loop (diffusers' UNet with the 14-channel
``conv_in``, one frame at a time, batch 3 per step). See ``bench_dreampose`` for what is measured with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

S_IMAGE, S_POSE = 8.0, 3.0  # the official README demo's --s1 8 --s2 3
SEED = 0
OFFICIAL_HW = (640, 512)  # (height, width): DreamPose's only working size (the adapter's vae2clip)
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class Job:
    """One sampling setup; also the spec a memory worker receives. ``fpb`` 0 is the official-style side."""

    height: int = 320
    width: int = 256
    frames: int = 8
    steps: int = 4
    fpb: int = 0
    device: str = "cpu"
    dtype: str = "fp32"
    tokens: str = ""  # file with the adapter tokens, computed once per script run
    attention: str = "comfy"  # the pack's attention kernel: ComfyUI's own choice, or torch SDPA (see ATTENTION)
    profile: str = "small"  # the UNet fixture: "small", or "full" (SD1.4's real shapes; bench_gpu.py)

    @property
    def side(self) -> str:
        if self.fpb == 0:
            return "official-style"
        return f"pack, {self.fpb} frame{'s' if self.fpb > 1 else ''}/call" + (", SDPA" if self.attention == "sdpa" else "")

    def describe(self) -> str:
        return (f"{self.frames} frames, {self.width}x{self.height} px (W x H), {self.steps} Euler steps, "
                f"s_I {S_IMAGE:g} / s_p {S_POSE:g}, {self.dtype} on {self.device}")


# -- shared inputs ---------------------------------------------------------------------------------------------------

def make_tokens(path: Path) -> None:
    """The subject photo's adapter tokens and the official black-image tokens, through the pack's own
    ``image_conditioning`` on the fixture CLIP ViT-B/32, VAE and adapter; saved for both sides and the workers."""
    import numpy as np
    import torch
    from PIL import Image

    from ...animapose.dreampose import checkpoint
    from ...animapose.dreampose.pipeline import image_conditioning, load_clip_b32
    from ..fixtures import dreampose as fx

    photo = torch.from_numpy(np.asarray(Image.open(fx.subject_image_file()).convert("RGB"), dtype=np.float32) / 255)
    clip = load_clip_b32(str(fx.tiny_clip_b32_folder()), "tiny B/32")
    vae = checkpoint.read_vae(str(fx.dreampose_vae_file()))
    positive, negative = image_conditioning(clip, vae, checkpoint.read_adapter(str(fx.dreampose_adapter_file())),
                                            photo[None])
    torch.save({"tokens": positive[0][0].float().cpu(), "uncond": negative[0][0].float().cpu()}, path)


def conditioning(job: Job):
    """(positive, middle, negative, latent) for the pack and (tokens, uncond, pose windows, noise) for the
    official-style side: the same tensors."""
    import torch

    from ...animapose.dreampose.guidance import build_conds
    from ...animapose.dreampose.pipeline import PoseSequence, SharedNoise, pose_conditioning
    from ...animapose.dreampose.poses import synthetic_uv_sequence

    t = torch.load(job.tokens)
    poses = PoseSequence(synthetic_uv_sequence(job.frames, job.height, job.width, seed=1), "synthetic")
    positive, middle, negative, latent = pose_conditioning([[t["tokens"], {}]], [[t["uncond"], {}]], poses, job.width,
                                                           job.height)
    windows = positive[0][1]["noise_concat"]
    noise = SharedNoise(SEED).generate_noise(latent)[:1]  # one noise picture for all frames, as the official code
    pack = (*build_conds(t["tokens"], t["uncond"], windows), latent)
    return pack, (t["tokens"], t["uncond"], windows, noise)


def unet_path(profile: str = "small"):
    from ..fixtures import dreampose as fx

    return fx.dreampose_unet_file(profile, ".pth")


def torch_dtype(job: Job):
    import torch

    return getattr(torch, DTYPES[job.dtype])


def sync(job: Job) -> None:
    import torch

    if job.device.startswith("cuda"):
        torch.cuda.synchronize()


# -- the two sides ---------------------------------------------------------------------------------------------------

def load_pack_model(job: Job):
    """The pack's MODEL from the official-layout file, with its weights put in place the way sampling does first."""
    import comfy.model_management

    from ...animapose.dreampose import checkpoint

    dtype = torch_dtype(job)
    model = checkpoint.load_unet(str(unet_path(job.profile)), dtype=dtype)
    if model.model.manual_cast_dtype not in (None, dtype):
        # On a CPU ComfyUI stores bf16/fp16 weights but computes in float32 (manual cast) unless the graph says
        # otherwise; ComfyUI's ModelComputeDtype node does this, so both sides compute in job.dtype.
        model.set_model_compute_dtype(dtype)
    comfy.model_management.load_models_gpu([model])
    return model


def pack_runner(model, job: Job, conds):
    """What the DreamPose sampler node does after the guider node: ``sample_frames`` with ``job.fpb`` frames per
    UNet call, under inference mode as ComfyUI's executor runs nodes. Returns run() -> latents (model space)."""
    import comfy.samplers
    import torch

    from ...animapose.dreampose.guidance import dreampose_guider
    from ...animapose.dreampose.pipeline import SharedNoise, sample_frames

    positive, middle, negative, latent = conds
    if job.attention == "sdpa":
        model = with_sdpa(model)
    guider = dreampose_guider(model, positive, middle, negative, image_cfg=S_IMAGE, pose_cfg=S_POSE)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", job.steps)
    sampler = comfy.samplers.sampler_object("euler")

    def run():
        with torch.inference_mode():
            out = sample_frames(guider, sampler, sigmas, SharedNoise(SEED), latent, job.fpb)["samples"]
        sync(job)
        return model.model.process_latent_in(out)  # sampling returns latents divided by SD's 0.18215

    return run


def comfy_attention_name() -> str:
    import comfy.ldm.modules.attention as attention

    return attention.optimized_attention.__name__.removeprefix("attention_")


def with_sdpa(model):
    """A clone of ``model`` whose attention runs torch SDPA, whatever kernel ComfyUI selected for the process."""
    import comfy.ldm.modules.attention as attention

    sdpa = attention.get_attention_function("pytorch")
    clone = model.clone()  # deep-copies model_options
    clone.model_options["transformer_options"]["optimized_attention_override"] = \
        lambda _selected, *args, **kwargs: sdpa(*args, **kwargs)
    return clone


def load_official_unet(job: Job):
    """The official get_unet() + load_state_dict path: diffusers' UNet with a 14-channel conv_in, same file."""
    import torch
    from diffusers import UNet2DConditionModel

    from ...animapose.dreampose import checkpoint
    from ..fixtures import dreampose as fx

    with torch.device("meta"):
        unet = UNet2DConditionModel(**fx.unet_diffusers_config(job.profile))
        unet.conv_in = torch.nn.Conv2d(14, 320, kernel_size=3, padding=(1, 1))
    unet.load_state_dict(checkpoint.read_unet_state_dict(str(unet_path(job.profile))), strict=True, assign=True)
    return unet.to(job.device, torch_dtype(job)).eval()


def euler_scheduler():
    from diffusers import EulerDiscreteScheduler

    # SD1.4's scheduler config (scaled-linear betas 0.00085-0.012) under Euler with ComfyUI "normal"'s spacing.
    return EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                  beta_schedule="scaled_linear", timestep_spacing="linspace")


def official_runner(unet, job: Job, inputs):
    """The official pipeline's loop (one frame per call of the pipeline, one UNet call of batch 3 per step) with
    Euler for PNDM; the scheduler math in fp32, the UNet in ``job.dtype``, under no_grad like the pipeline."""
    import torch

    tokens, uncond, windows, noise = (x.to(job.device) for x in inputs)
    dtype = torch_dtype(job)
    context = torch.cat([uncond, tokens, tokens]).to(dtype)
    zeros = torch.zeros_like(windows[:1])
    scheduler = euler_scheduler()

    def run():
        out = []
        with torch.no_grad():
            for i in range(job.frames):
                poses = torch.cat([zeros, windows[i:i + 1], zeros]).to(dtype)
                scheduler.set_timesteps(job.steps, device=job.device)
                # The official PNDM loop starts from unit-variance x_T; in Euler's sigma space that is
                # noise * sqrt(sigma_max^2 + 1), which ComfyUI's full-denoise noise scaling also uses (diffusers'
                # init_noise_sigma under "linspace" spacing would be sigma_max alone, 0.2% apart).
                latents = noise * (scheduler.sigmas[0] ** 2 + 1) ** 0.5
                for t in scheduler.timesteps:
                    x = scheduler.scale_model_input(torch.cat([latents] * 3), t).to(dtype)
                    e = unet(torch.cat([x, poses], 1), t, encoder_hidden_states=context).sample.float()
                    e0, e1, e2 = e.chunk(3)
                    eps = e0 + S_IMAGE * (e2 - e0) + S_POSE * (e1 - e2)
                    latents = scheduler.step(eps, t, latents).prev_sample
                out.append(latents)
        sync(job)
        return torch.cat(out).cpu()

    return run


def build(job: Job, shared: dict):
    """run() for ``job``; ``shared`` keeps the loaded models of a process so each side loads once."""
    conds, inputs = conditioning(job)
    if job.fpb == 0:
        if "unet" not in shared:
            shared["unet"] = load_official_unet(job)
        return official_runner(shared["unet"], job, inputs)
    if "model" not in shared:
        shared["model"] = load_pack_model(job)
    return pack_runner(shared["model"], job, conds)
