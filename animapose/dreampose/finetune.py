"""DreamPose subject finetuning (the paper's stages 2a and 2b) on copies of native ComfyUI objects.

Stage 2a trains the UNet and the CLIP-VAE adapter on the subject's photos and their DensePose UV maps; stage 2b trains
the VAE decoder to reproduce the photos. Defaults are the paper's (UNet + adapter 500 steps at lr 1e-5, decoder 1500
steps at lr 5e-5); one step is one AdamW update (betas 0.9/0.999, weight decay 1e-2, eps 1e-8, constant lr, gradient
norm clipped to 1.0: the UNet's in 2a as in finetune-unet.py, the decoder's in 2b) on one training sample.

What flows in is never changed. The UNet's effective weights (the input's weight patches applied) are copied into an
fp32 UNet that is trained; the result is a clone of the input MODEL carrying the trained weights as "set" patches
(strength_model 0, the mechanism of ComfyUI's own ModelMergeSimple), so every model option of the input is kept and
"Save DreamPose Model" bakes them into the saved file. The adapter and the VAE are trained as copies.

Choices, against the official finetune-unet.py / finetune-vae.py / datasets/dreampose_dataset.py:
- Value ranges follow what the checkpoints were trained on (pipeline.py's "clean"): target pictures are [0, 1] values
  fed to the VAE encoder as they are (its target latents, and the decoder's target in 2b), the adapter's VAE branch
  gets the same, poses are UV in [0, 1] with 0 on the background. CLIP gets the correctly preprocessed picture, as the
  inference pipeline gives it in both value ranges (the official scripts rescaled [0, 1] tensors by 1/255 a second
  time). "legacy" is an inference-only parity mode; a model finetuned here serves both.
- Bug fixed: finetune-unet.py's collate_fn used the un-augmented conditioning photo as the target, so 70% of steps
  paired a cropped pose with an uncropped picture (and with several photos, photo i's picture with photo j's pose).
  Here the target is the photo whose pose is used, and the crop is applied to both (``augment.crop_pair``). The
  conditioning photos stay uncropped: inference conditions on the uncropped photo.
- The cropped pose stays floating point (the official path through an 8-bit PIL image quantised it to 1/255), and a
  crop box stays inside the picture (the official one could overrun the right edge and get black padding).
- The official dataset drew a rotation angle and never applied it; no rotation is applied here either, which is what
  the released subject models were trained with.
- The official ``--gradient_checkpointing`` called a method the adapter lacks and crashed. Here it checkpoints the
  UNet's blocks with ComfyUI's own helper from its LoRA trainer (comfy_extras/nodes_train.py) and the decoder's
  resnet/attention/upsample blocks; the adapter (1 M parameters) needs none.
- Each step's pose input is the photo's UV map repeated over the 5-frame window, as the official training did (a
  photo has no neighbouring frames). Training noise is DDPM's: a uniform timestep of 1000 and the ε-MSE loss.
- ComfyUI's VAE encode returns the posterior mean where the official code drew ``latent_dist.sample()``; the SD VAE's
  posterior spread is far below the crop augmentation's effect.
- Several photos: the target photo is drawn at random each step; the conditioning is the average of all photos'
  adapter tokens ("average", like the conditioning node's default), the first photo ("first") or, as the official
  script did, a random photo ("random"). Use the same choice as the image-conditioning node at inference.
- The official step counts were epochs over the photos (500 passes for the UNet, i.e. 500 x N steps with N photos;
  for the decoder, 1500 passes whose batch of 4 x accumulation 4 collapsed to single crops with one photo). Here steps
  are updates, whatever the number of photos.
- Randomness comes from one CPU generator per stage seeded with ``seed``: on the CPU the same seed gives bitwise the
  same weights.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch

from ..comfy_seam import comfy_model_management
from ..errors import AnimaPoseError
from ..training.loop import (  # noqa: F401  (re-exported: stage 1 and the tests use them from here)
    ADAMW,
    LOG_EVERY,
    MAX_GRAD_NORM,
    PRECISIONS,
    Precision,
    ProgressFn,
    Updater,
    checkpoint_modules,
    effective_weights,
    highest_modules,
    run_updates,
    trainable_unet,
    training_device,
    training_mode,
    uncheckpoint,
)
from .adapter import vae_encode_input
from .augment import (
    UNET_CROP,
    VAE_CROP,
    CropPolicy,
    add_noise,
    alphas_cumprod_from_sigmas,
    crop_pair,
    decoder_loss,
    epsilon_loss,
)
from .checkpoint import DREAMPOSE_IN_CHANNELS
from .pipeline import OFFICIAL_HW, PoseSequence, check_reference_models, fit_channels_first, fit_images
from .pipeline import reference_features as _reference_features
from .poses import pose_windows

log = logging.getLogger(__name__)

CONDITIONINGS = ["average", "first", "random"]
UNET_DEFAULTS = {"steps": 500, "learning_rate": 1e-5}
VAE_DEFAULTS = {"steps": 1500, "learning_rate": 5e-5}


@dataclass
class StageSettings:
    steps: int
    learning_rate: float
    width: int = 512
    height: int = 640
    fit: str = "letterbox"
    crop_probability: float | None = None  # None: the stage's official probability
    seed: int = 0
    precision: str = "fp32"
    gradient_checkpointing: bool = True
    multi_image: str = "average"  # UNet stage only


# -- training machinery: the update loop and its parts live in animapose/training/loop.py, shared with the motion
# trainer; the names stay importable from here for stage 1 (training.py).

def check_model(model, input_name: str = "model", in_channels: int | None = DREAMPOSE_IN_CHANNELS) -> None:
    inner = getattr(model, "model", None)
    unet = getattr(inner, "diffusion_model", None)
    config = getattr(getattr(inner, "model_config", None), "unet_config", None)
    if unet is None or config is None or not hasattr(model, "get_key_patches"):
        raise AnimaPoseError(input_name, "this is not a diffusion MODEL", "connect the model output of 'AnimaPose "
                             "Load DreamPose'")
    if in_channels is not None and config.get("in_channels") != in_channels:
        raise AnimaPoseError(input_name, f"the UNet takes {config.get('in_channels')} input channels; a DreamPose UNet "
                             f"takes {in_channels} (4 latent + 5 poses x UV)", "connect the model output of "
                             "'Load DreamPose UNet + Adapter'")


def noise_schedule(model, input_name: str = "model") -> torch.Tensor:
    """The cumulative alphas of the model's 1000-step discrete schedule (SD1.x's, which DreamPose trained with)."""
    from ..comfy_seam import comfy_model_sampling

    sampling = model.get_model_object("model_sampling")
    sigmas = getattr(sampling, "sigmas", None)
    if not isinstance(sampling, comfy_model_sampling.EPS) or isinstance(sampling, comfy_model_sampling.V_PREDICTION) \
            or sigmas is None or sigmas.numel() != 1000:
        raise AnimaPoseError(input_name, "DreamPose trains an ε-prediction model on a 1000-step discrete schedule; "
                             "this MODEL's sampling was changed", "connect the MODEL straight from the DreamPose "
                             "loader, without model-sampling patches")
    return alphas_cumprod_from_sigmas(sigmas.detach().cpu())


def effective_unet_weights(model, device: torch.device) -> dict[str, torch.Tensor]:
    """fp32 copies of the UNet weights with the MODEL's weight patches applied, keyed as in ``diffusion_model``;
    nothing of the MODEL is loaded or touched (``training.loop.effective_weights``)."""
    return effective_weights(model, "diffusion_model.", device)


def unet_checkpoint_modules(unet: torch.nn.Module) -> list:
    return highest_modules(unet)


def adapter_copy(adapter, device: torch.device):
    from .adapter import EmbeddingAdapter

    out = EmbeddingAdapter(device=device, dtype=torch.float32)
    out.load_state_dict({k: v.detach().to(device=device, dtype=torch.float32) for k, v in adapter.state_dict().items()})
    return out.train().requires_grad_(True)


def diffusion_loss(unet, adapter, clip_tokens, ref_latents, target_latents, poses, alphas_cumprod,
                   generator: torch.Generator, precision: Precision) -> torch.Tensor:
    """DreamPose's training loss on one batch: the adapter turns (CLIP tokens, reference latents) into the
    cross-attention tokens, the target latents are noised at uniform DDPM timesteps, the pose windows are concatenated
    and the UNet's noise prediction is scored by MSE. All inputs are on the training device."""
    device = target_latents.device
    batch = target_latents.shape[0]
    timesteps = torch.randint(0, alphas_cumprod.numel(), (batch,), generator=generator)
    noise = torch.randn(target_latents.shape, generator=generator).to(device)
    noisy = add_noise(target_latents, noise, alphas_cumprod, timesteps)
    with precision.autocast():
        tokens = adapter(clip_tokens, ref_latents)
        if tokens.shape[0] != batch:
            tokens = tokens.expand(batch, -1, -1)
        x = torch.cat([noisy, poses.to(noisy.dtype)], dim=1)
        prediction = unet(x, timesteps=timesteps.to(device=device, dtype=torch.float32), context=tokens,
                          transformer_options={})
    return epsilon_loss(prediction, noise)


def model_with_weights(model, weights: dict[str, torch.Tensor]):
    """A clone of ``model`` whose UNet weights are replaced by ``weights`` (``diffusion_model`` keys), as patches."""
    current = model.model.diffusion_model.state_dict()
    patches = {}
    for key, value in weights.items():
        dtype = current[key].dtype if current[key].dtype in (torch.float32, torch.float16, torch.bfloat16) \
            else torch.float32
        patches["diffusion_model." + key] = (value.detach().to(device=model.offload_device, dtype=dtype),)
    out = model.clone()
    for key in patches:
        # The trained weights already include the input's patches (LoRAs, an earlier finetune): the clone's own
        # copies of those lists are dropped rather than recomputed at every load and kept in memory for nothing.
        out.patches.pop(key, None)
    # strength_model 0 and strength 1: the patched weight is exactly the trained one, whatever the original was.
    applied = out.add_patches(patches, strength_patch=1.0, strength_model=0.0)
    if len(applied) != len(patches):
        raise RuntimeError(f"{len(patches) - len(applied)} trained UNet weights have no place in the MODEL")
    return out


# -- subject photos and their poses ----------------------------------------------------------------------------

def check_pairs(images: torch.Tensor, poses: PoseSequence) -> None:
    """Each subject photo needs the UV map of that very photo, in the same order and with the same framing."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise AnimaPoseError("images", "expected an IMAGE batch of subject photos", "connect a Load Image output")
    if not isinstance(poses, PoseSequence):
        raise AnimaPoseError("poses", "this is not a DreamPose pose sequence", "connect 'Load DensePose UV Poses'")
    n, m = images.shape[0], poses.frames
    if n != m:
        raise AnimaPoseError("poses", f"{n} subject photo(s) but {m} pose frame(s); photo k trains with pose k",
                             f"give one UV map per photo, in the photos' order: a pose folder with {n} "
                             "frame_N_densepose.npy files made from these photos")
    (ih, iw), (ph, pw) = images.shape[1:3], poses.source_hw
    if abs((iw / ih) / (pw / ph) - 1) > 0.03:
        raise AnimaPoseError("poses", f"the photos are {iw}x{ih} but the pose maps {pw}x{ph}: different shapes, so a "
                             "pose cannot lie on its photo", "compute the UV maps on these photos, uncropped")
    empty = [k for k in range(m) if not bool((poses.uv[k] > 0).any())]
    if empty:
        raise AnimaPoseError("poses", f"the pose map of photo {empty[0]} is empty: DensePose found no person in it",
                             "use photos where the subject is fully visible, or remove that photo and its pose")


def _check_size(width: int, height: int) -> None:
    if width % 8 or height % 8 or width < 64 or height < 64:
        raise AnimaPoseError("width", f"{width}x{height} is not a training size (multiples of 8, at least 64)",
                             "use 512x640, DreamPose's training size, or smaller multiples of 8 for a quick test")


def _check_vae(vae) -> None:
    fsm = getattr(vae, "first_stage_model", None)
    if fsm is None or _decoder_of(fsm) is None or getattr(vae, "latent_channels", None) != 4 \
            or getattr(vae, "downscale_ratio", None) != 8:
        raise AnimaPoseError("vae", "this VAE is not an SD1.x KL autoencoder with a decoder to finetune",
                             "connect the DreamPose VAE ('Load DreamPose VAE' or the SD1.x VAE)")


def _photos_chw(images: torch.Tensor, settings: StageSettings) -> torch.Tensor:
    return fit_images(images, (settings.height, settings.width), settings.fit).movedim(-1, 1).contiguous()


def _stage_loop(name: str, steps: int, stage, updater: Updater, progress: ProgressFn | None) -> list[float]:
    """``steps`` updates of ``stage.loss`` (drawing its randomness from ``stage.generator``), interruptible."""
    return run_updates(f"DreamPose subject finetune ({name})", steps, lambda: stage.loss(stage.generator), updater,
                       progress)


# -- stage 2a: UNet + adapter --------------------------------------------------------------------------------------

class _UNetStage:
    """Everything one UNet + adapter run needs, built on the training device; dropped as a whole afterwards."""

    def __init__(self, model, adapter, clip_vision, vae, images, poses, settings: StageSettings, device):
        check_model(model)
        check_reference_models(clip_vision, adapter)
        check_pairs(images, poses)
        _check_size(settings.width, settings.height)
        if settings.multi_image not in CONDITIONINGS:
            raise AnimaPoseError("multi_image", f"unknown choice '{settings.multi_image}'",
                                 f"use one of {', '.join(CONDITIONINGS)}")
        self.settings, self.device, self.vae = settings, device, vae
        self.alphas = noise_schedule(model)
        self.latent_format = model.model.latent_format
        self.precision = Precision(settings.precision, device)
        # The reference features (frozen CLIP and VAE encoder) of the uncropped photos, once: the adapter on top trains.
        with torch.no_grad():  # ComfyUI's encoders assume inference mode; without it they would record a graph
            clip_tokens, ref_latents = _reference_features(clip_vision, vae, fit_images(images, OFFICIAL_HW,
                                                                                        settings.fit))
        self.clip_tokens, self.ref_latents = clip_tokens.to(device).clone(), ref_latents.to(device).clone()
        self.photos = _photos_chw(images, settings)
        self.poses = fit_channels_first(poses.uv, (settings.height, settings.width), settings.fit)
        self.unet = trainable_unet(model, device)
        self.adapter = adapter_copy(adapter, device)
        if settings.gradient_checkpointing:
            checkpoint_modules(unet_checkpoint_modules(self.unet))
        probability = UNET_CROP.probability if settings.crop_probability is None else settings.crop_probability
        self.crop = CropPolicy(probability, UNET_CROP.margin)
        self.generator = torch.Generator().manual_seed(settings.seed)

    def sample(self, generator: torch.Generator, crop: bool = True):
        """(CLIP tokens, reference latents, target latent, pose windows) of one training sample."""
        n = self.photos.shape[0]
        j = int(torch.randint(0, n, (1,), generator=generator))
        mode = self.settings.multi_image
        if mode == "random":
            i = int(torch.randint(0, n, (1,), generator=generator))
            clip_tokens, ref_latents = self.clip_tokens[i:i + 1], self.ref_latents[i:i + 1]
        elif mode == "first":
            clip_tokens, ref_latents = self.clip_tokens[:1], self.ref_latents[:1]
        else:  # the adapter is linear, so averaging its inputs averages its output tokens
            clip_tokens, ref_latents = self.clip_tokens.mean(0, keepdim=True), self.ref_latents.mean(0, keepdim=True)
        picture, pose = self.photos[j:j + 1], self.poses[j:j + 1]
        if crop:
            picture, pose, _ = crop_pair(picture, pose, self.crop, generator)
        with torch.no_grad():  # the [0, 1] picture reaches the encoder as it is, as in training
            raw = self.vae.encode(vae_encode_input(picture.movedim(1, -1), "clean"))
        target = self.latent_format.process_in(raw.float()).to(self.device)
        h, w = target.shape[-2:]
        windows = pose_windows(pose, (h, w), "clamp", "clean").to(self.device)
        return clip_tokens, ref_latents, target, windows

    def loss(self, generator: torch.Generator, crop: bool = True) -> torch.Tensor:
        clip_tokens, ref_latents, target, windows = self.sample(generator, crop)
        return diffusion_loss(self.unet, self.adapter, clip_tokens, ref_latents, target, windows, self.alphas,
                              generator, self.precision)


def finetune_unet(model, adapter, clip_vision, vae, images: torch.Tensor, poses: PoseSequence,
                  settings: StageSettings, progress: ProgressFn | None = None):
    """Stage 2a. Returns (MODEL, adapter, per-step losses); with 0 steps the inputs come back as they are."""
    if settings.steps <= 0:
        check_model(model)
        return model, adapter, []
    device = training_device()
    with training_mode():
        stage = _UNetStage(model, adapter, clip_vision, vae, images, poses, settings, device)
        try:
            updater = Updater([*stage.unet.parameters(), *stage.adapter.parameters()], settings.learning_rate,
                              stage.precision, clip_params=list(stage.unet.parameters()))
            losses = _stage_loop("UNet + adapter", settings.steps, stage, updater, progress)
            out_model = model_with_weights(model, stage.unet.state_dict())
            out_adapter = stage.adapter.requires_grad_(False).eval().to("cpu")
        finally:
            # An interrupt's traceback keeps this frame alive: drop the training copies now, not at the next GC.
            stage.__dict__.clear()
            stage = updater = None
            comfy_model_management.soft_empty_cache()
    return out_model, out_adapter, losses


@torch.no_grad()
def unet_probe_loss(model, adapter, clip_vision, vae, images, poses, settings: StageSettings, draws: int = 4,
                    seed: int = 1234) -> float:
    """The mean training loss of a MODEL/adapter over ``draws`` fixed (photo, timestep, noise) draws, uncropped:
    comparable across models, so a finetune can be checked to lower it."""
    device = training_device()
    probe = StageSettings(**{**settings.__dict__, "gradient_checkpointing": False, "steps": 1})
    with torch.inference_mode(False):
        stage = _UNetStage(model, adapter, clip_vision, vae, images, poses, probe, device)
        generator = torch.Generator().manual_seed(seed)
        return sum(float(stage.loss(generator, crop=False).detach()) for _ in range(draws)) / draws


# -- stage 2b: VAE decoder -----------------------------------------------------------------------------------------

def _decoder_of(autoencoder: torch.nn.Module):
    """The decoder of an SD1.x KL autoencoder (``decoder``) or of a TAESD (``taesd_decoder``); None otherwise."""
    for name in ("decoder", "taesd_decoder"):
        if isinstance(getattr(autoencoder, name, None), torch.nn.Module):
            return getattr(autoencoder, name)
    return None


def _decoder_blocks(decoder: torch.nn.Module) -> list:
    from ..comfy_seam import TAESDBlock as Block
    from ..comfy_seam import VAEAttnBlock as AttnBlock
    from ..comfy_seam import VAEResnetBlock as ResnetBlock
    from ..comfy_seam import VAEUpsample as Upsample

    return [m for m in decoder.modules() if isinstance(m, (ResnetBlock, AttnBlock, Upsample, Block))]


class _DecoderStage:
    def __init__(self, vae, images, settings: StageSettings, device):
        _check_vae(vae)
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise AnimaPoseError("images", "expected an IMAGE batch of subject photos", "connect a Load Image output")
        _check_size(settings.width, settings.height)
        self.device = device
        self.precision = Precision(settings.precision, device)
        # Fully loaded first, so the copy holds plain weights and no low-VRAM bookkeeping of the original.
        comfy_model_management.load_models_gpu([vae.patcher], force_full_load=True)
        self.autoencoder = copy.deepcopy(vae.first_stage_model).to(device=device, dtype=torch.float32)
        self.autoencoder.eval().requires_grad_(False)
        _decoder_of(self.autoencoder).requires_grad_(True)
        if settings.gradient_checkpointing:
            checkpoint_modules(_decoder_blocks(_decoder_of(self.autoencoder)))
        self.photos = _photos_chw(images, settings)
        probability = VAE_CROP.probability if settings.crop_probability is None else settings.crop_probability
        self.crop = CropPolicy(probability, VAE_CROP.margin)
        self.generator = torch.Generator().manual_seed(settings.seed)

    def loss(self, generator: torch.Generator, crop: bool = True) -> torch.Tensor:
        j = int(torch.randint(0, self.photos.shape[0], (1,), generator=generator))
        picture = self.photos[j:j + 1]
        if crop:
            picture, _, _ = crop_pair(picture, None, self.crop, generator)
        picture = picture.to(self.device)
        with torch.no_grad(), self.precision.autocast():
            # The encoder sees the [0, 1] picture as it is and stays frozen; only the decoder learns.
            latent = self.autoencoder.encode(picture)
        with self.precision.autocast():
            decoded = self.autoencoder.decode(latent.float())
        return decoder_loss(decoded, picture)


def _vae_with(vae, autoencoder: torch.nn.Module):
    """A new native VAE: the input's settings with the trained autoencoder, managed by its own ModelPatcher."""
    from ..comfy_seam import comfy_model_patcher

    out = copy.copy(vae)
    out.first_stage_model = autoencoder.to(device=vae.patcher.offload_device, dtype=vae.vae_dtype).eval()
    out.patcher = comfy_model_patcher.ModelPatcher(out.first_stage_model, load_device=vae.device,
                                                   offload_device=vae.patcher.offload_device)
    out.size = None
    out.model_size()
    return out


def finetune_vae_decoder(vae, images: torch.Tensor, settings: StageSettings, progress: ProgressFn | None = None):
    """Stage 2b. Returns (VAE, per-step losses); with 0 steps the VAE comes back as it is."""
    if settings.steps <= 0:
        _check_vae(vae)
        return vae, []
    device = training_device()
    with training_mode():
        stage = _DecoderStage(vae, images, settings, device)
        try:
            params = list(_decoder_of(stage.autoencoder).parameters())
            updater = Updater(params, settings.learning_rate, stage.precision, clip_params=params)
            losses = _stage_loop("VAE decoder", settings.steps, stage, updater, progress)
            uncheckpoint(stage.autoencoder)
            out = _vae_with(vae, stage.autoencoder.requires_grad_(False))
        finally:
            stage.__dict__.clear()
            stage = updater = None
            comfy_model_management.soft_empty_cache()
    return out, losses


@torch.no_grad()
def decoder_probe_loss(vae, images, settings: StageSettings, draws: int = 2, seed: int = 1234) -> float:
    """The mean decoder loss of a VAE over ``draws`` fixed uncropped photos (see ``unet_probe_loss``)."""
    probe = StageSettings(**{**settings.__dict__, "gradient_checkpointing": False, "steps": 1})
    with torch.inference_mode(False):
        stage = _DecoderStage(vae, images, probe, training_device())
        generator = torch.Generator().manual_seed(seed)
        return sum(float(stage.loss(generator, crop=False).detach()) for _ in range(draws)) / draws
