"""Non-finite numbers: a NaN anywhere in a diffusion run spreads to every pixel and the video comes out black with
no error. These checks say where the NaN came from instead."""

from __future__ import annotations

import logging
import os

import torch

from .errors import AnimaPoseError

log = logging.getLogger(__name__)


def warn_if_not_finite(latent: torch.Tensor, where: str) -> bool:
    """Logs a warning when a sampled latent holds NaN or infinity; returns whether it is finite."""
    finite = bool(torch.isfinite(latent).all())
    if not finite:
        bad = int((~torch.isfinite(latent)).sum())
        log.warning("AnimaPose: %s produced %d non-finite values in a latent of shape %s: the decoded frames will be "
                    "black. Check the model files (a loader names a tensor with NaN), the guidance scales and the "
                    "precision (fp16 overflows; try bf16 or fp32).", where, bad, list(latent.shape))
    return finite


def check_model_output(x: torch.Tensor, out, blame) -> None:
    """Backstop inside sampling: raises at the first model call whose output holds NaN or infinity, instead of
    letting it spread to every pixel of the result (a black video). One reduction and one device sync per call.
    ``blame()`` builds the error naming the pack node and input most likely at fault; when the input ``x`` was
    already not finite, the latent given to the sampler (or the sampler's own arithmetic) is named instead."""
    if not isinstance(out, torch.Tensor) or bool(torch.isfinite(out).all()):
        return
    if not bool(torch.isfinite(x).all()):
        raise AnimaPoseError("latent_image", "the latent reaching the model already holds NaN or infinite values, so "
                             "every frame would come out black", "check the nodes that make or change the latent "
                             "before the sampler (a VAE Encode of a broken picture, a latent upscale) and the "
                             "sampler's settings (a very high CFG)")
    raise blame()


_checked_files: dict[tuple[str, int, int], str | None] = {}


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """Name of the first floating-point tensor with a NaN or infinity, or None."""
    for name, t in tensors.items():
        if not t.is_floating_point():
            continue
        if t.dtype.itemsize == 1:  # float8 has no isfinite kernel on every device
            t = t.to(torch.float16)
        if not bool(torch.isfinite(t).all()):
            return name
    return None


def check_finite_weights(tensors: dict[str, torch.Tensor], path: str, input_name: str, what: str) -> None:
    """Refuses a model file with a non-finite weight, naming the tensor. Checked once per file version (path, size,
    modification time): a re-queued workflow does not scan gigabytes again."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _checked_files:
        _checked_files[key] = first_non_finite(tensors)
    bad = _checked_files[key]
    if bad is not None:
        raise AnimaPoseError(input_name, f"{what} '{os.path.basename(path)}' holds NaN or infinite values in tensor "
                             f"'{bad}', which would turn every frame black",
                             "download the file again; if it persists, the file itself is broken")
