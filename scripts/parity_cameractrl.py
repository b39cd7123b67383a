"""Prints the float32 parity figures of CameraCtrl quoted in the README, with the tests' reference written from the
authors' code (``tests/unit/cameractrl_reference.py``) and the comfy-tier helpers (``tests/comfy/test_cameractrl.py``).

Run with the provisioned venv python from the repository root: ``python scripts/parity_cameractrl.py`` (about a
minute on a CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import comfy_env  # noqa: E402

comfy_env.bootstrap()

import comfy.sd  # noqa: E402
import torch  # noqa: E402

from animapose.motion import NORM_AUTO  # noqa: E402
from animapose.motion.camera_poses import parse_pose_text, preset_trajectory  # noqa: E402
from animapose.motion.cameractrl import apply_cameractrl, load_cameractrl  # noqa: E402
from animapose.motion.cameractrl_model import build_cameractrl, split_cameractrl  # noqa: E402
from animapose.motion.inflate import apply_motion_model, load_motion_model  # noqa: E402
from tests.comfy import test_cameractrl as tc  # noqa: E402
from tests.comfy.reference import rel_err  # noqa: E402
from tests.comfy.test_inflation_parity import diffusers_eps  # noqa: E402
from tests.fixtures.cameractrl import cameractrl_file, cameractrl_parts  # noqa: E402
from tests.fixtures.motion import motion_module_file  # noqa: E402
from tests.fixtures.sd15 import sd15_checkpoint  # noqa: E402
from tests.unit import cameractrl_reference as ref  # noqa: E402
from tests.unit.test_cameractrl import pose_text  # noqa: E402


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
        trajectory = preset_trajectory(name, tc.FRAMES, 1.5)
        x, context, t = tc._inputs()
        m = apply_cameractrl(inflated, load_cameractrl(str(path), path.name, torch.float32), trajectory, strength)
        ours = tc._call(m, x, context, t)
        m.detach()
        expected = diffusers_eps(tc._reference_unet(small, v3, path, trajectory.plucker(64, 64), strength), x, context, t)
        plain = tc._call(inflated, x, context, t)
        inflated.detach()
        print(f"UNet noise prediction with CameraCtrl ({name}, strength {strength:g}): relative error "
              f"{rel_err(ours, expected):.1e} (the camera moves the prediction by {rel_err(ours, plain):.1e})")


if __name__ == "__main__":
    plucker()
    encoder()
    unet()
