"""FreeInit (Wu et al., "FreeInit: Bridging Initialization Gap in Video Diffusion Models").

Sampling runs ``iterations`` times. After each pass the result is diffused back to the first sigma with the
*initial* noise, and the low spatio-temporal frequencies of that are kept while the high ones come from fresh
noise: ``freq_mix(z_T, z_rand, LPF)`` in the 3-D FFT over (frames, H, W). The filters and the mix follow the
authors' ``freeinit_utils.py`` (gaussian, butterworth, ideal, box; d_s, d_t, order), vectorised.

ComfyUI samplers take unit noise and scale it themselves (``noise_scaling``), so the re-initialisation is done in
noise units: ``z_T = (forward_diffusion(x0, initial_noise, sigma) - b) / a`` where ``a * noise + b`` is how the
sampler starts. For an epsilon model starting at the top sigma from an empty latent this is exactly the paper's
``sqrt(abar_T) x0 + sqrt(1 - abar_T) eps`` at t = 999 (what diffusers' ``add_noise`` computes); other model types
and partial denoising use their own forward process the same way.

``FreeInitSampler`` wraps a SAMPLER (SamplerCustom / SamplerCustomAdvanced); ``sampler_sample_wrapper`` does the
same as a MODEL wrapper around whatever sampler a KSampler picks. Pure torch here; ComfyUI objects come in as
arguments.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.fft as fft

from ...errors import AnimaPoseError

log = logging.getLogger(__name__)

FILTERS = ["butterworth", "gaussian", "ideal", "box"]
KEY = "animapose.freeinit"
SAMPLER_NODE = "AnimateDiff FreeInit Sampler"
MODEL_NODE = "AnimateDiff FreeInit (KSampler)"


def low_pass_filter(shape: tuple[int, int, int], kind: str = "butterworth", d_s: float = 0.25, d_t: float = 0.25,
                    order: int = 4) -> torch.Tensor:
    """The (T, H, W) low-pass mask of the reference, centred (to use on ``fftshift``-ed spectra), float32."""
    t_len, h_len, w_len = shape
    if d_s == 0 or d_t == 0:
        return torch.zeros(shape)
    if kind == "box":
        mask = torch.zeros(shape)
        threshold_s = round(int(h_len // 2) * d_s)
        threshold_t = round(t_len // 2 * d_t)
        ct, ch, cw = t_len // 2, h_len // 2, w_len // 2
        mask[ct - threshold_t:ct + threshold_t, ch - threshold_s:ch + threshold_s,
             cw - threshold_s:cw + threshold_s] = 1.0
        return mask
    # float64, like the reference's Python floats; the result is stored as float32 as the reference's mask is
    t = torch.arange(t_len, dtype=torch.float64).view(-1, 1, 1)
    h = torch.arange(h_len, dtype=torch.float64).view(1, -1, 1)
    w = torch.arange(w_len, dtype=torch.float64).view(1, 1, -1)
    d_square = ((d_s / d_t) * (2 * t / t_len - 1)) ** 2 + (2 * h / h_len - 1) ** 2 + (2 * w / w_len - 1) ** 2
    if kind == "gaussian":
        mask = torch.exp(-1 / (2 * d_s ** 2) * d_square)
    elif kind == "butterworth":
        mask = 1 / (1 + (d_square / d_s ** 2) ** order)
    elif kind == "ideal":
        mask = (d_square <= d_s * 2).to(torch.float64)
    else:
        raise ValueError(f"unknown FreeInit filter {kind!r}")
    return mask.to(torch.float32)


def freq_mix_3d(x: torch.Tensor, noise: torch.Tensor, lpf: torch.Tensor) -> torch.Tensor:
    """Low frequencies of ``x``, high of ``noise``, over the last three dims (T, H, W)."""
    dims = (-3, -2, -1)
    x_freq = fft.fftshift(fft.fftn(x, dim=dims), dim=dims)
    noise_freq = fft.fftshift(fft.fftn(noise, dim=dims), dim=dims)
    mixed = x_freq * lpf + noise_freq * (1 - lpf)
    return fft.ifftn(fft.ifftshift(mixed, dim=dims), dim=dims).real


def freq_mix_frames_first(x: torch.Tensor, noise: torch.Tensor, lpf: torch.Tensor) -> torch.Tensor:
    """``freq_mix_3d`` for ComfyUI's (frames, C, H, W) latents."""
    out = freq_mix_3d(x.movedim(0, 1).float(), noise.movedim(0, 1).float(), lpf.to(x.device))
    return out.movedim(1, 0).to(x.dtype)


@dataclass(frozen=True)
class FreeInitOptions:
    iterations: int = 3
    filter: str = "butterworth"
    d_s: float = 0.25
    d_t: float = 0.25
    order: int = 4


def _no_noise_error(input_name: str, node: str) -> AnimaPoseError:
    return AnimaPoseError(input_name, "this sampling starts without noise (add_noise disabled, DisableNoise, or the "
                          "second pass of a split sampling), so FreeInit has no initial noise to restart from",
                          "enable add_noise, or use FreeInit only on a sampling that starts from noise", node=node)


def run_iterations(sample_once, model_sampling, sigmas: torch.Tensor, noise: torch.Tensor, latent_image,
                   max_denoise: bool, options: FreeInitOptions, seed, input_name: str, node: str, progress=None):
    """``sample_once(noise) -> samples``, ``options.iterations`` times, re-initialising the noise in between."""
    if noise.ndim != 4:
        raise AnimaPoseError(input_name, f"FreeInit works on (frames, C, H, W) latents, not {tuple(noise.shape)}",
                             "use it with an AnimateDiff MODEL and a batch of frames", node=node)
    if options.iterations > 1 and torch.count_nonzero(noise) == 0:
        raise _no_noise_error(input_name, node)
    lpf = low_pass_filter((noise.shape[0], *noise.shape[-2:]), options.filter, options.d_s, options.d_t, options.order)
    generator = torch.Generator().manual_seed((int(seed or 0) + 1) % 2**64)
    latent = torch.zeros_like(noise) if latent_image is None else latent_image
    sigma = sigmas[0]
    samples = None
    current = noise
    for it in range(options.iterations):
        if it:
            current = reinitialise(samples, noise, latent, model_sampling, sigma, max_denoise, lpf, generator)
        log.info("AnimateDiff FreeInit (KSampler): iteration %d of %d", it + 1, options.iterations)
        samples = sample_once(current)
        if progress is not None:
            progress(it + 1, options.iterations)
    return samples


def reinitialise(samples, initial_noise, latent_image, model_sampling, sigma, max_denoise, lpf, generator):
    """The next pass's unit noise: low frequencies of the result re-diffused with the initial noise, high
    frequencies of fresh noise."""
    x0 = samples.to(initial_noise.dtype)
    diffused = model_sampling.noise_scaling(sigma, initial_noise, x0, False)
    offset = model_sampling.noise_scaling(sigma, torch.zeros_like(initial_noise), latent_image, max_denoise)
    gain = model_sampling.noise_scaling(sigma, torch.ones_like(initial_noise[:1]), torch.zeros_like(initial_noise[:1]),
                                        max_denoise)
    z_t = (diffused - offset) / gain
    z_rand = torch.randn(initial_noise.shape, generator=generator, dtype=torch.float32).to(initial_noise.device)
    return freq_mix_frames_first(z_t, z_rand, lpf).to(initial_noise.dtype)


def _max_denoise(sampler, model_wrap, sigmas) -> bool:
    if hasattr(sampler, "max_denoise"):
        return bool(sampler.max_denoise(model_wrap, sigmas))
    max_sigma = float(model_wrap.inner_model.model_sampling.sigma_max)
    return math.isclose(max_sigma, float(sigmas[0]), rel_tol=1e-05) or float(sigmas[0]) > max_sigma


def _progress(total: int):
    try:
        from ...comfy_seam import comfy_utils

        bar = comfy_utils.ProgressBar(total)
        return lambda done, _total: bar.update_absolute(done, total)
    except ImportError:  # outside ComfyUI (unit tests)
        return None


class FreeInitSampler:
    """A SAMPLER that runs another one ``iterations`` times with FreeInit's noise re-initialisation."""

    def __init__(self, inner, options: FreeInitOptions):
        if isinstance(inner, FreeInitSampler):
            raise AnimaPoseError("sampler", "the sampler is already a FreeInit sampler (the iterations would multiply)",
                                 "connect the plain sampler, and set iterations on one FreeInit node", node=SAMPLER_NODE)
        if not callable(getattr(inner, "sample", None)):
            raise AnimaPoseError("sampler", f"{type(inner).__name__} has no sample() to restart",
                                 "connect a SAMPLER from KSamplerSelect or another sampler node", node=SAMPLER_NODE)
        self.inner = inner
        self.options = options

    def max_denoise(self, model_wrap, sigmas):
        return _max_denoise(self.inner, model_wrap, sigmas)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        def once(n):
            return self.inner.sample(model_wrap, sigmas, extra_args, callback, n, latent_image, denoise_mask,
                                     disable_pbar)

        return run_iterations(once, model_wrap.inner_model.model_sampling, sigmas, noise, latent_image,
                              self.max_denoise(model_wrap, sigmas), self.options, extra_args.get("seed"), "sampler",
                              SAMPLER_NODE, _progress(self.options.iterations))


def sampler_sample_wrapper(options: FreeInitOptions):
    """A SAMPLER_SAMPLE wrapper (MODEL option) that gives every sampling of the MODEL FreeInit's iterations."""

    def wrapper(executor, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
        if isinstance(executor.class_obj, FreeInitSampler):
            raise AnimaPoseError("model", "FreeInit is set twice: on the MODEL and as the SAMPLER",
                                 "keep one of the two FreeInit nodes", node=MODEL_NODE)
        latent_image = args[0] if args else kwargs.get("latent_image")

        def once(n):
            return executor(model_wrap, sigmas, extra_args, callback, n, *args, **kwargs)

        return run_iterations(once, model_wrap.inner_model.model_sampling, sigmas, noise, latent_image,
                              _max_denoise(executor.class_obj, model_wrap, sigmas), options, extra_args.get("seed"),
                              "model", MODEL_NODE, _progress(options.iterations))

    return wrapper


def add_to_model(model, options: FreeInitOptions):
    from ...comfy_seam import comfy_patcher_extension

    m = model.clone()
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.SAMPLER_SAMPLE, KEY)
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.SAMPLER_SAMPLE, KEY, sampler_sample_wrapper(options))
    return m
