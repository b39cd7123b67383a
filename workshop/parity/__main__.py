"""Prints the float32 parity figures of the image and camera add-ons (docs/exactness.md): PIA, SparseCtrl and
AnimateLCM-I2V against diffusers / the authors' code, and CameraCtrl's Plücker rays, encoder and UNet against the
reference written from the authors' code, with the same helpers as the comfy-tier tests.

``python -m comfyui_animapose.workshop.parity [section ...]`` (sections: sparsectrl, pia, lcm_i2v, cameractrl; all by
default; a few minutes on a CPU).
"""

from __future__ import annotations

import argparse

SECTIONS = ("sparsectrl", "pia", "lcm_i2v", "cameractrl")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m comfyui_animapose.workshop.parity", description=__doc__.split("\n\n")[0])
    ap.add_argument("sections", nargs="*", metavar="section", help=f"one of {', '.join(SECTIONS)} (default: all)")
    names = ap.parse_args().sections or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}")
    from . import figures

    for name in names:
        figures.SECTIONS[name]()


if __name__ == "__main__":
    main()
