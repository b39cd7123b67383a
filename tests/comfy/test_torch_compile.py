"""torch.compile through ComfyUI's own TorchCompileModel (``set_torch_compile_wrapper``, what the node calls) on an
inflated MODEL and on the DreamPose MODEL: no errors, one graph for the whole UNet with the motion modules inside (no
graph breaks), nothing compiled again for later steps or a second run, the eager latents.

Attention runs torch SDPA (``--use-pytorch-cross-attention``, the setting docs/speed-and-memory.md advises on CPUs): ComfyUI's
CPU default, its sub-quadratic kernel, asks psutil for free memory inside every attention call, which breaks the
graph (measured: the plain UNet then compiles into 24 pieces, the inflated one into 25; both settle after a second
run).

The backend here records each graph dynamo hands it and runs it eagerly (inductor's C++ compilation would take
minutes on two cores; the graphs, guards and recompilations are dynamo's, the same for every backend). Inductor's
own figures are in ``workshop/bench/precision.py --section compile``.
"""

from __future__ import annotations

import comfy.samplers
import pytest
import torch

from comfyui_animapose.workshop.sampling import run

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


def with_sdpa(model):
    import comfy.ldm.modules.attention as attention

    sdpa = attention.get_attention_function("pytorch")
    m = model.clone()
    m.model_options["transformer_options"]["optimized_attention_override"] = lambda _sel, *a, **k: sdpa(*a, **k)
    return m


def test_inflated_model_compiles_once(tiny, animated, fresh_dynamo):
    _, _, _, positive, negative = tiny
    model = with_sdpa(animated)
    backend = Recorder()
    m = compiled(model, backend)
    eager = run(model, positive, negative, frames=4, steps=3)
    out = run(m, positive, negative, frames=4, steps=3)
    # One graph for every UNet call of the run: the pack's wrappers, patches and injected modules trace into it.
    assert backend.graphs == 1, (backend.graphs, dict(fresh_dynamo["graph_break"]))
    assert not fresh_dynamo["graph_break"]
    assert rel(out, eager) < 1e-5
    run(m, positive, negative, frames=4, steps=3, seed=1)
    assert backend.graphs == 1, "a second run compiled again"


def test_dreampose_model_compiles_once(fresh_dynamo):
    from comfyui_animapose.animapose.dreampose import checkpoint
    from comfyui_animapose.animapose.dreampose.guidance import build_conds, dreampose_guider
    from comfyui_animapose.animapose.dreampose.pipeline import SharedNoise, sample_frames
    from comfyui_animapose.workshop.fixtures import dreampose as fx

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

    model = with_sdpa(model)
    backend = Recorder()
    m = compiled(model, backend)
    eager = sample(model, 3)
    out = sample(m, 3)
    graphs = backend.graphs
    assert graphs == 1 and not fresh_dynamo["graph_break"], (graphs, dict(fresh_dynamo["graph_break"]))
    assert rel(out, eager) < 1e-5
    sample(m, 3)
    assert backend.graphs == graphs, "a second run compiled again"
