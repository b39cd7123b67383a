"""The main job: real ComfyUI with the pack, demo models, every shipped workflow queued, outputs listed.

Run through ``scripts/demo.sh`` (which provisions first). The SD1.5 checkpoint and the v2 motion module are the tiny
models the pack trained itself on synthetic clips of moving shapes (``workshop/demo/train_models.py``; shipped in
``demo_models/``, widened to the real layouts on first use), so the AnimateDiff workflows draw coloured shapes that
move; the other models are random-weight fixtures in the real files' layouts. All are linked under the real file
names, so the shipped workflows run unchanged apart from CPU-sized resolution and steps
(``workshop/workflows.py``).
The DreamPose workflows run the tiny DreamPose the pack trained on synthetic people (``workshop/demo/train_dreampose.py``;
shipped in ``demo_models/``, widened on first use) with a held-out synthetic subject and a synthetic walk;
``--dreampose random`` gives them random weights in the official layouts instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..authoring.thumbnails import make_thumbnail
from ..env import AP_HOME
from ..models import demo_files
from ..precision import MODES, resolve, server_args, with_compute_dtype
from ..server import ComfyServer, prepare_base_dir
from ..workflows import WORKFLOWS, shipped, shrink_api_prompt, template_name

log = logging.getLogger("animapose.demo")
# The settings the tiny DreamPose's claims were measured at (docs/tiny-dreampose.md): 3 sampling steps and the paper's s_I = 8 give
# a washed-out backdrop on this model, 8 steps and s_I = 3 a clean figure.
# The trained demo models draw a clean clip in 10 DDIM steps (the clips docs/demo-models.md measures); the tests' 3 steps only
# prove that the graph runs.
TRAINED_ANIMATEDIFF = {"KSampler": {"steps": 10}}
TRAINED_DREAMPOSE = {"BasicScheduler": {"steps": 8}, "AnimaPose_DreamPoseGuider": {"image_cfg": 3.0}}


def with_settings(prompt: dict, settings: dict) -> dict:
    for node in prompt.values():
        for name, value in settings.get(node["class_type"], {}).items():
            if name in node.get("inputs", {}):
                node["inputs"][name] = value
    return prompt


def main() -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help="keep the server running afterwards for the browser UI")
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--profile", default="trained", choices=["trained", "tiny", "small"],
                    help="SD1.5 models: the pack's trained demo models (default), or random fixtures (tiny: one level, "
                         "small: SD1.5's block positions)")
    ap.add_argument("--dreampose", default="trained", choices=["trained", "random"],
                    help="DreamPose files: the tiny model trained on synthetic people (default; see docs/tiny-dreampose.md), or "
                         "random weights in the official layouts (the 111 M-parameter 'small' UNet)")
    ap.add_argument("--no-thumbnails", action="store_true",
                    help="do not write the Templates dialog thumbnails (workflows/<template>.jpg) from the outputs")
    ap.add_argument("--only", nargs="+", metavar="WORD",
                    help="queue only the workflows whose file stem in workflows/api/ contains one of these words "
                         "(e.g. dreampose, or animatediff_img2vid)")
    ap.add_argument("--base", type=Path, default=AP_HOME / "base", help="ComfyUI base directory")
    ap.add_argument("--precision", default="auto", choices=MODES,
                    help="UNet precision: auto (default) is bf16 on CPUs with bf16 units (avx512_bf16/amx_bf16 in "
                         "/proc/cpuinfo), else fp32. bf16 starts ComfyUI with --bf16-unet and puts ComfyUI's "
                         "ModelComputeDtype (bf16) after each model loader of the queued workflows")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    precision = resolve(args.precision)
    log.info("precision: %s (%s)", precision, "chosen" if args.precision != "auto" else
             "this CPU has bf16 units" if precision == "bf16" else "no bf16 units on this CPU")

    log.info("making demo models (cached after the first run)")
    base = prepare_base_dir(args.base, demo_files(args.profile, args.dreampose))
    server = ComfyServer(base, port=args.port, extra_args=server_args(precision)).start()
    failed = 0
    try:
        err = server.pack_import_error()
        if err:
            log.error("the pack failed to import:\n%s", err[-3000:])
            return 1
        log.info("ComfyUI is up at %s (base directory %s)", server.url, base)
        results = []
        object_info = server.object_info() if precision == "bf16" else {}
        for path in shipped(api_only=True):
            if args.only and not any(word in path.stem for word in args.only):
                continue
            prompt = shrink_api_prompt(json.loads(path.read_text()))
            if args.dreampose == "trained" and path.stem.startswith("dreampose"):
                prompt = with_settings(prompt, TRAINED_DREAMPOSE)
            if args.profile == "trained" and path.stem.startswith("animatediff"):
                prompt = with_settings(prompt, TRAINED_ANIMATEDIFF)
            if precision == "bf16":
                prompt = with_compute_dtype(prompt, object_info)
            t0 = time.time()
            try:
                entry = server.run(prompt, timeout=1800)
            except Exception as e:  # report every workflow, then fail at the end
                failed += 1
                log.error("%s FAILED: %s", path.name, e)
                results.append((path.name, f"FAILED: {e}", []))
                continue
            files = server.output_files(entry)
            results.append((path.name, f"{time.time() - t0:.1f} s", files))
            if not args.no_thumbnails:
                thumb = make_thumbnail(files, WORKFLOWS / f"{template_name(path.stem)}.jpg")
                log.info("thumbnail: %s", thumb or "none (no readable picture output)")
            log.info("%s done in %.1f s", path.name, time.time() - t0)
        print("\nOutputs:")
        for name, status, files in results:
            print(f"  {name}: {status}")
            for f in files:
                print(f"    {f}")
        if args.serve:
            print(f"\nComfyUI keeps running at {server.url} (Ctrl+C to stop). Drag a file from workflows/ onto the canvas.")
            while server.alive():
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
