"""torch.compile through ComfyUI's own TorchCompileModel (``set_torch_compile_wrapper``, what the node calls) on an
inflated MODEL and on the DreamPose MODEL: no errors, graphs compiled once (not again for later steps or runs), the
eager latents.

The backend here records each graph dynamo hands it and runs it eagerly (inductor's C++ compilation would take
minutes on two cores; the graphs, guards and recompilations are dynamo's, the same for every backend). Inductor's
own figures are in ``scripts/bench_precision.py --section compile``.
"""

from __future__ import annotations

import comfy.samplers
import pytest
import torch

from tests.comfy.helpers import run

torch_dynamo = pytest.importorskip("torch._dynamo")


class Recorder:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def compiled(model, backend):
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    m = model.clone()
    set_torch_compile_wrapper(model=m, backend=backend)
    return m


def rel(a, b) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.fixture
def fresh_dynamo():
    torch_dynamo.reset()
    torch_dynamo.utils.counters.clear()
    yield torch_dynamo.utils.counters
    torch_dynamo.reset()


def test_inflated_model_compiles_once(tiny, animated, fresh_dynamo):
    _, _, _, positive, negative = tiny
    backend = Recorder()
    m = compiled(animated, backend)
    eager = run(animated, positive, negative, frames=4, steps=3)
    out = run(m, positive, negative, frames=4, steps=1)
    graphs = backend.graphs
    assert graphs >= 1
    out = run(m, positive, negative, frames=4, steps=3)
    # New sigmas every step and a second sampling run: nothing is compiled again.
    assert backend.graphs == graphs, f"recompiled: {backend.graphs - graphs} more graphs"
    assert rel(out, eager) < 1e-5
    # The pack's wrappers and injected modules trace into the UNet's graph: no breaks of their own.
    breaks = {k: v for k, v in fresh_dynamo["graph_break"].items()}
    assert not [k for k in breaks if "animapose" in k.lower()], breaks


def test_dreampose_model_compiles_once(fresh_dynamo):
    from animapose.dreampose import checkpoint
    from animapose.dreampose.guidance import build_conds, dreampose_guider
    from animapose.dreampose.pipeline import SharedNoise, sample_frames
    from tests.fixtures import dreampose as fx

    model = checkpoint.load_unet(str(fx.dreampose_unet_file("tiny", ".pth")), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    tokens, uncond = torch.randn(1, 50, 768, generator=g), torch.randn(1, 50, 768, generator=g)
    windows = torch.rand(2, 10, 8, 8, generator=g)
    pos, mid, neg = build_conds(tokens, uncond, windows)
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    sampler = comfy.samplers.sampler_object("euler")

    def sample(m, steps):
        sigmas = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "normal", steps)
        guider = dreampose_guider(m, pos, mid, neg, image_cfg=3.0, pose_cfg=2.0)
        return sample_frames(guider, sampler, sigmas, SharedNoise(1), latent, 2)["samples"]

    backend = Recorder()
    m = compiled(model, backend)
    eager = sample(model, 3)
    sample(m, 1)
    graphs = backend.graphs
    out = sample(m, 3)
    assert graphs >= 1 and backend.graphs == graphs
    assert rel(out, eager) < 1e-5
