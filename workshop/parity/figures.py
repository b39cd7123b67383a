"""The parity figures' sections (see ``__main__``); importing this module bootstraps ComfyUI."""

from __future__ import annotations

from .. import comfy_env

comfy_env.bootstrap()

import comfy.sd
import torch

from ...animapose.motion import NORM_AUTO, NORM_DIFFUSERS
from ...animapose.motion.addons.camera_trajectories import parse_pose_text, preset_trajectory
from ...animapose.motion.addons.cameractrl import apply_cameractrl, load_cameractrl
from ...animapose.motion.addons.cameractrl_encoder import build_cameractrl, split_cameractrl
from ...animapose.motion.addons.pia import pia_concat
from ...animapose.motion.addons.pia_affinity import affinity_schedule
from ...animapose.motion.addons.sparsectrl import load_sparsectrl
from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from ..fixtures.camera_poses import pose_text
from ..fixtures.cameractrl import cameractrl_file, cameractrl_parts
from ..fixtures.motion import motion_module_file
from ..fixtures.sd15 import sd15_checkpoint
from ..fixtures.sparsectrl import sparsectrl_file
from ..references import cameractrl_reference as ref
from ..references.motion_unet import rel_err, set_original_scope
from . import cameractrl_unet
from . import lcm_i2v as lcm_i2v_parity
from . import pia as pia_parity
from . import sparsectrl as sparsectrl_parity
from .motion import diffusers_eps

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
            ref_down, ref_mid = sparsectrl_parity.reference(sparsectrl_parity.diffusers(variant), cond, mask, t, context)
            down, mid = sparsectrl_parity.run_pack(control, torch.cat([cond, mask], 1), t, context, FRAMES)
            errs = [rel_err(a, b) for a, b in zip(down, ref_down)] + [rel_err(mid, ref_mid)]
            print(f"SparseCtrl {variant}, {layout} layout: max relative error {max(errs):.2e} over {len(errs)} residuals",
                  flush=True)


def pia() -> None:
    model, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")), output_vae=False,
                                                      output_clip=False)
    path = motion_module_file("pia", "original", "small", dtype="fp32")
    for groupnorm in (NORM_DIFFUSERS, NORM_AUTO):
        x, image_latent, context, t = pia_parity.inputs()
        schedule = affinity_schedule(FRAMES, "moderate motion")
        unet, _ = pia_parity.diffusers_pia_unet(model, path)
        if groupnorm == NORM_AUTO:
            set_original_scope(unet, motion_per_frame=True, resnet_across_frames=True, frames=FRAMES)
        ref = pia_parity.reference(unet, x, image_latent, schedule, context, t)
        ours = pia_parity.run_pack(model, path, groupnorm, torch.cat([x, pia_concat(image_latent, schedule)], 1), context, t)
        print(f"PIA, groupnorm '{groupnorm}': max relative error {rel_err(ours, ref):.2e}", flush=True)


def lcm_i2v() -> None:
    from ...animapose.motion.addons.lcm_i2v_encoder import ImageEncoder, encoder_spec, split_encoder
    from ..fixtures.motion import motion_state_dict
    from ..references.lcm_i2v_reference import adapter_from_weights, features

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
    path = motion_module_file("animatelcm_i2v", "original", "small", ext=".ckpt", dtype="fp32")
    unet = lcm_i2v_parity.build_reference_unet(model, path)
    for motion_scale, strength in ((0.8, 1.0), (0.0, 0.5)):
        err, moved = lcm_i2v_parity.parity(model, path, unet, motion_scale, strength)
        print(f"AnimateLCM-I2V UNet, motion_scale {motion_scale}, strength {strength}: max relative error {err:.2e} "
              f"(the picture moves the output by {moved:.2e})", flush=True)


def plucker() -> None:
    worst = 0.0
    for seed in range(3):
        text = pose_text(16, seed)
        for h, w in ((32, 48), (40, 24), (256, 384)):
            diff = parse_pose_text(text).plucker(h, w) - ref.plucker_from_text(text, h, w)
            worst = max(worst, diff.abs().max().item())
    print(f"Plücker embedding, 3 random 16-frame pose files x 3 sizes: max abs error {worst:.1e}")


def encoder() -> None:
    enc_sd, merge_sd = cameractrl_parts("micro", seed=3)
    enc, merges, info = split_cameractrl({**enc_sd, **merge_sd})
    model = build_cameractrl(enc, merges, info).eval()
    p = preset_trajectory("orbit left", 16).plucker(64, 96)
    with torch.no_grad():
        errs = [rel_err(a, b) for a, b in zip(model.encoder(p), ref.encode(enc_sd, p, 4))]
    print("camera encoder, 4 levels 32/64/128/128, 16 frames: relative error per level "
          + ", ".join(f"{e:.1e}" for e in errs))


def unet() -> None:
    small, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")), output_vae=False,
                                                      output_clip=False)
    v3 = motion_module_file("v3", "original", "small", dtype="fp32")
    inflated = apply_motion_model(small, load_motion_model(str(v3), "v3"), 1.0, "use existing", NORM_AUTO).model
    path = cameractrl_file("small", "release")
    for name, strength in (("orbit right", 0.7), ("zoom in", 1.0)):
        trajectory = preset_trajectory(name, cameractrl_unet.FRAMES, 1.5)
        x, context, t = cameractrl_unet.inputs()
        m = apply_cameractrl(inflated, load_cameractrl(str(path), path.name, torch.float32), trajectory, strength)
        ours = cameractrl_unet.call(m, x, context, t)
        m.detach()
        expected = diffusers_eps(cameractrl_unet.reference_unet(small, v3, path, trajectory.plucker(64, 64), strength), x, context, t)
        plain = cameractrl_unet.call(inflated, x, context, t)
        inflated.detach()
        print(f"UNet noise prediction with CameraCtrl ({name}, strength {strength:g}): relative error "
              f"{rel_err(ours, expected):.1e} (the camera moves the prediction by {rel_err(ours, plain):.1e})")


def cameractrl() -> None:
    plucker()
    encoder()
    unet()


SECTIONS = {"sparsectrl": sparsectrl, "pia": pia, "lcm_i2v": lcm_i2v, "cameractrl": cameractrl}
