"""Prints the float32 parity figures of PIA, SparseCtrl and AnimateLCM-I2V quoted in the README, with the comfy-tier
tests' helpers (``tests/comfy/test_pia.py``, ``tests/comfy/test_sparsectrl.py``, ``tests/comfy/test_lcm_i2v.py``).

Run with the provisioned venv python from the repository root: ``python scripts/parity_i2v.py`` (a few minutes on
a CPU); ``python scripts/parity_i2v.py lcm_i2v`` (or ``pia``, ``sparsectrl``) prints one section.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import comfy_env  # noqa: E402

comfy_env.bootstrap()

import comfy.sd  # noqa: E402
import torch  # noqa: E402

from animapose.motion import NORM_AUTO, NORM_DIFFUSERS  # noqa: E402
from animapose.motion.affinity import affinity_schedule  # noqa: E402
from animapose.motion.image_conditioning import pia_concat  # noqa: E402
from animapose.motion.sparsectrl import load_sparsectrl  # noqa: E402
from tests.comfy import test_lcm_i2v as tl  # noqa: E402
from tests.comfy import test_pia as tp  # noqa: E402
from tests.comfy import test_sparsectrl as ts  # noqa: E402
from tests.comfy.reference import rel_err, set_original_scope  # noqa: E402
from tests.fixtures.sd15 import sd15_checkpoint  # noqa: E402
from tests.fixtures.sparsectrl import sparsectrl_file  # noqa: E402

FRAMES = 8


def sparsectrl() -> None:
    for variant in ("rgb", "scribble"):
        for layout in ("original", "diffusers"):
            path = sparsectrl_file(variant, "small", layout, dtype="fp32")
            control = load_sparsectrl(str(path), path.name, norm_across_frames=True)
            g = torch.Generator().manual_seed(2)
            channels, size = (4, 8) if variant == "rgb" else (3, 64)
            cond = torch.zeros(FRAMES, channels, size, size)
            mask = torch.zeros(FRAMES, 1, size, size)
            for f in (0, 5):
                cond[f] = torch.randn(channels, size, size, generator=g)
                mask[f] = 1.0
            context = torch.randn(1, 77, 768, generator=g) * 0.5
            t = torch.tensor(601.0)
            ref_down, ref_mid = ts._reference(ts._diffusers(variant), cond, mask, t, context)
            down, mid = ts._ours(control, torch.cat([cond, mask], 1), t, context, FRAMES)
            errs = [rel_err(a, b) for a, b in zip(down, ref_down)] + [rel_err(mid, ref_mid)]
            print(f"SparseCtrl {variant}, {layout} layout: max relative error {max(errs):.2e} over {len(errs)} residuals",
                  flush=True)


def pia() -> None:
    model, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")), output_vae=False,
                                                      output_clip=False)
    path = tp.motion_module_file("pia", "original", "small", dtype="fp32")
    for groupnorm in (NORM_DIFFUSERS, NORM_AUTO):
        x, image_latent, context, t = tp._inputs()
        schedule = affinity_schedule(FRAMES, "moderate motion")
        unet, _ = tp._diffusers_pia_unet(model, path)
        if groupnorm == NORM_AUTO:
            set_original_scope(unet, motion_per_frame=True, resnet_across_frames=True, frames=FRAMES)
        ref = tp._reference(unet, x, image_latent, schedule, context, t)
        ours = tp._ours(model, path, groupnorm, torch.cat([x, pia_concat(image_latent, schedule)], 1), context, t)
        print(f"PIA, groupnorm '{groupnorm}': max relative error {rel_err(ours, ref):.2e}", flush=True)


def lcm_i2v() -> None:
    from animapose.motion.image_encoder import ImageEncoder, encoder_spec, split_encoder
    from tests.fixtures.motion import motion_state_dict
    from tests.unit.lcm_i2v_reference import adapter_from_weights, features

    widths = (32, 64, 128, 128)  # widths that change between levels, so in_conv runs too
    weights = split_encoder(motion_state_dict("animatelcm_i2v", "original", "micro", dtype="fp32"))
    ours = ImageEncoder(encoder_spec(weights, widths))
    ours.load_state_dict(weights, strict=True)
    ref = adapter_from_weights(weights, widths)
    latent = torch.randn(1, 4, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(latent, 5, ref.motion_scale)
    errs = [rel_err(g, e[0].permute(1, 0, 2, 3)) for g, e in zip(got, features(ref, latent, 5))]
    print(f"AnimateLCM-I2V image encoder (4 levels, 9x7 latent, 5 frames): max relative error {max(errs):.2e}",
          flush=True)
    model, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")), output_vae=False,
                                                      output_clip=False)
    path = tl.motion_module_file("animatelcm_i2v", "original", "small", ext=".ckpt", dtype="fp32")
    unet = tl.build_reference_unet(model, path)
    for motion_scale, strength in ((0.8, 1.0), (0.0, 0.5)):
        err, moved = tl.parity(model, path, unet, motion_scale, strength)
        print(f"AnimateLCM-I2V UNet, motion_scale {motion_scale}, strength {strength}: max relative error {err:.2e} "
              f"(the picture moves the output by {moved:.2e})", flush=True)


if __name__ == "__main__":
    sections = {"sparsectrl": sparsectrl, "pia": pia, "lcm_i2v": lcm_i2v}
    for name in sys.argv[1:] or sections:
        sections[name]()
