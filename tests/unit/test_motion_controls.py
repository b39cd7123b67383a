"""AnimateDiff controls without ComfyUI: multivals and keyframes (values reach the frames they name, also inside
context windows; constants take the scalar path), the temporal-attention ``scale``, prompt-travel schedules and
interpolation (against diffusers' FreeNoise prompt interpolation), FreeNoise noise (bitwise against diffusers) and
FreeInit's filters and mixing (against the authors' formulas and diffusers, <= 1e-5)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.fft as fft

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.controls import freeinit, freenoise
from comfyui_animapose.animapose.motion.controls.multival import (
    MotionKeyframe,
    Multival,
    ResolvedControls,
    add_keyframe,
    interpolate_points,
    parse_per_frame,
)
from comfyui_animapose.animapose.motion.controls.prompt_travel import frame_weights, interpolate, parse_schedule
from comfyui_animapose.animapose.motion.module import TemporalAttention, TemporalTransformer
from comfyui_animapose.animapose.motion.sampling.stages import MotionStage, check_range
from comfyui_animapose.workshop.parity import mutations


def _module(c=8, seed=0):
    torch.manual_seed(seed)
    m = TemporalTransformer(c, heads=2, norm_groups=2, position_length=32)
    for p in m.parameters():  # proj_out is zero-initialised in the original; random here so the module does work
        torch.nn.init.normal_(p, std=0.2)
    return m.eval()


# -- multivals ------------------------------------------------------------------------------------------------------

def test_parse_per_frame():
    assert parse_per_frame("1, 0.5\n0.25") == ([1.0, 0.5, 0.25], None)
    assert parse_per_frame("16: 0.5, 0: 1") == (None, [(0, 1.0), (16, 0.5)])
    assert parse_per_frame("  ") == (None, None)
    with pytest.raises(AnimaPoseError, match="item 2 .*frame: value"):
        parse_per_frame("0: 1, 8 0.5")
    with pytest.raises(AnimaPoseError, match="frame 3 is given twice"):
        parse_per_frame("3: 1, 3: 0.5")
    with pytest.raises(AnimaPoseError, match="not a finite number"):
        parse_per_frame("1, nan")
    assert torch.allclose(interpolate_points([(2, 1.0), (6, 0.0)], 8),
                          torch.tensor([1, 1, 1, 0.75, 0.5, 0.25, 0, 0], dtype=torch.float32))


def test_multival_checks_name_node_input_and_fix():
    with pytest.raises(AnimaPoseError, match="AnimateDiff Motion Multival: input 'mask': the mask has 3 frames but the "
                                             "clip has 8.*Fix: give a mask of 1 or 8"):
        Multival(mask=torch.ones(3, 4, 4)).check(8)
    with pytest.raises(AnimaPoseError, match="input 'per_frame': 3 values for a clip of 8 frames"):
        Multival(frame_list=[1.0, 1.0, 0.5]).check(8)
    with pytest.raises(AnimaPoseError, match="keyframe 9 is beyond the clip's last frame \\(7\\)"):
        Multival(frame_points=[(0, 1.0), (9, 0.0)]).check(8)
    Multival(mask=torch.ones(1, 4, 4)).check(8)
    Multival(frame_list=[0.5]).check(8)


def test_keyframes_and_ranges_refuse_overlaps():
    k = add_keyframe(None, MotionKeyframe(0.5, Multival(0.0), Multival(1.0)))
    k = add_keyframe(k, MotionKeyframe(0.2, Multival(1.0), Multival(1.0)))
    assert [x.start_percent for x in k] == [0.2, 0.5]
    with pytest.raises(AnimaPoseError, match="AnimateDiff Motion Keyframe: input 'start_percent': another keyframe"):
        add_keyframe(k, MotionKeyframe(0.5, Multival(), Multival()))
    with pytest.raises(AnimaPoseError, match="input 'end_percent': the range 0.6..0.4 is empty"):
        check_range(0.6, 0.4, None)
    with pytest.raises(AnimaPoseError, match="input 'keyframes': a keyframe starts at 0.2, outside"):
        check_range(0.3, 1.0, k)


def test_constant_multival_is_the_scalar_path():
    m = _module()
    x = torch.randn(2 * 4, 8, 3, 3)
    stage = MotionStage("k", "mm", [m], Multival(0.7), Multival(1.0), False)
    assert stage.simple
    assert torch.equal(stage.call(m, x, {"cond_or_uncond": [0, 1]}), m(x, 4, 0.7))
    # a per-frame list of the same constant builds a tensor, and still gives the same numbers
    listed = MotionStage("k", "mm", [m], Multival(0.7, frame_list=[1.0] * 4), Multival(1.0), False)
    assert not listed.simple
    assert torch.equal(listed.call(m, x, {"cond_or_uncond": [0, 1]}), m(x, 4, 0.7))
    # scale 1 as a tensor of ones equals no scale at all
    assert torch.equal(m(x, 4, key_scale=torch.ones(1, 4, 1)), m(x, 4))


def test_per_frame_effect_reaches_the_named_frames_also_in_windows():
    m = _module()
    frames = 8
    mv = Multival(1.0, frame_list=[1, 1, 1, 1, 1, 0, 1, 0.5])
    stage = MotionStage("k", "mm", [m], mv, Multival(1.0), False)
    stage.prepare(frames, lambda p: 1.0 - p)
    full = m(torch.randn(1, 8, 2, 2).expand(frames, -1, -1, -1).contiguous(), frames)  # warm: shapes only
    assert full.shape == (frames, 8, 2, 2)
    # a window of frames 4..7, cond and uncond batched: frame 5 (effect 0) comes out as it went in
    x = torch.randn(2 * 4, 8, 2, 2)
    opts = {"cond_or_uncond": [0, 1], "context_window": SimpleNamespace(index_list=[4, 5, 6, 7]),
            "sigmas": torch.tensor([0.5, 0.5])}
    stage.begin_call(opts, 4)
    out = stage.call(m, x, opts)
    stage.end_call()
    plain = m(x, 4)
    for chunk in (0, 4):
        assert torch.equal(out[chunk + 1], x[chunk + 1])  # frame 5
        assert torch.equal(out[chunk + 0], plain[chunk + 0])  # frame 4, effect 1
        assert torch.allclose(out[chunk + 3], x[chunk + 3] + 0.5 * (plain[chunk + 3] - x[chunk + 3]), atol=1e-6)


def test_masked_effect_is_spatial():
    m = _module()
    mask = torch.zeros(1, 4, 4)
    mask[:, :, 2:] = 1.0  # right half moves
    stage = MotionStage("k", "mm", [m], Multival(1.0, mask=mask), Multival(1.0), False)
    stage.prepare(4, lambda p: 1.0 - p)
    x = torch.randn(4, 8, 4, 4)
    out = stage.call(m, x, {"cond_or_uncond": [0]})
    assert torch.equal(out[..., :2], x[..., :2])
    assert torch.equal(out[..., 2:], m(x, 4)[..., 2:])


def test_attention_scale_multiplies_the_keys_per_frame():
    torch.manual_seed(1)
    attn = TemporalAttention(8, 2, 32, False).eval()
    x = torch.randn(5, 4, 8)
    s = torch.tensor([1.0, 2.0, 0.5, 1.0]).view(1, 4, 1)
    out = attn(x, s)
    # reference: scaled keys in a hand-written softmax attention
    xp = x + attn.pos_encoder.table(4, x.device, x.dtype)
    q = attn.to_q(xp).view(5, 4, 2, 4).transpose(1, 2)
    k = (attn.to_k(xp) * s).view(5, 4, 2, 4).transpose(1, 2)
    v = attn.to_v(xp).view(5, 4, 2, 4).transpose(1, 2)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
    ref = attn.to_out[0]((w @ v).transpose(1, 2).reshape(5, 4, 8))
    assert torch.allclose(out, ref, atol=1e-5)
    assert not torch.allclose(out, attn(x), atol=1e-3)


def test_key_scale_mask_layout_matches_the_sequences():
    """Sequence n of the temporal attention is clip n // (h*w), pixel n % (h*w); a mask must land there."""
    rc = ResolvedControls(frames=3)
    mask = torch.arange(3 * 2 * 2, dtype=torch.float32).view(3, 2, 2)
    ks = rc.key_scale(Multival(1.0, mask=mask), [0, 1, 2], 2, 2, 2, "cpu", torch.float32)
    assert ks.shape == (2 * 4, 3, 1)
    for n in range(8):
        pixel = n % 4
        assert torch.equal(ks[n, :, 0], mask.view(3, 4)[:, pixel])


def test_keyframes_switch_by_sigma():
    stage = MotionStage("k", "mm", [], Multival(1.0), Multival(1.0), False, 0.0, 1.0,
                        [MotionKeyframe(0.5, Multival(0.25), Multival(2.0))])
    stage.prepare(4, lambda p: 10.0 * (1.0 - p))  # sigma 10 at the start, 0 at the end
    stage.begin_call({"sigmas": torch.tensor([8.0])}, 4)
    assert stage.now[1].value == 1.0 and stage.now[2].value == 1.0
    stage.begin_call({"sigmas": torch.tensor([4.0])}, 4)
    assert stage.now[1].value == 0.25 and stage.now[2].value == 2.0
    ranged = MotionStage("k", "mm", [], Multival(1.0), Multival(1.0), False, 0.0, 0.5)
    ranged.prepare(4, lambda p: 10.0 * (1.0 - p))
    assert ranged.begin_call({"sigmas": torch.tensor([8.0])}, 4)
    assert not ranged.begin_call({"sigmas": torch.tensor([2.0])}, 4)


# -- prompt travel --------------------------------------------------------------------------------------------------

def test_prompt_schedule_parsing_and_errors():
    assert parse_schedule('0: a cat\n\n# comment\n"16": "a dog",\n', 32) == [(0, "a cat"), (16, "a dog")]
    with pytest.raises(AnimaPoseError, match="AnimateDiff Prompt Travel: input 'text': line 2 \\('16 a dog'\\) is not"):
        parse_schedule("0: a cat\n16 a dog", 32)
    with pytest.raises(AnimaPoseError, match="line 2 puts a prompt at frame 40, outside the clip's frames 0..31"):
        parse_schedule("0: a cat\n40: a dog", 32)
    with pytest.raises(AnimaPoseError, match="line 3 gives frame 0 a second prompt \\(line 1"):
        parse_schedule("0: a cat\n8: a cow\n0: a dog", 32)
    with pytest.raises(AnimaPoseError, match="line 1 .* has no prompt"):
        parse_schedule("0:", 32)
    with pytest.raises(AnimaPoseError, match="no 'frame: prompt' lines"):
        parse_schedule("# nothing", 32)


def test_prompt_interpolation_matches_diffusers_freenoise():
    from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

    torch.manual_seed(0)
    embeds = [torch.randn(1, 77, 16) for _ in range(3)]
    keys, frames = [0, 5, 12], 13
    ours = interpolate(embeds, keys, frames, "linear")
    ref = torch.zeros(frames, 77, 16)
    for i in range(len(keys) - 1):
        ref[keys[i]:keys[i + 1] + 1] = AnimateDiffFreeNoiseMixin._lerp(None, keys[i], keys[i + 1], embeds[i],
                                                                        embeds[i + 1])
    assert torch.equal(ours, ref)
    hold = interpolate(embeds, keys, frames, "hold")
    assert torch.equal(hold[4], embeds[0][0]) and torch.equal(hold[5], embeds[1][0])
    # frames before the first and after the last keyframe hold them
    assert [w[:2] for w in frame_weights([2, 4], 6)] == [(0, 0), (0, 0), (0, 0), (0, 1), (1, 1), (1, 1)]


# -- FreeNoise ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames,length,stride", [(64, 16, 4), (37, 16, 4), (24, 8, 3), (20, 16, 16)])
def test_freenoise_shuffle_matches_diffusers_bitwise(frames, length, stride):
    from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

    pipe = SimpleNamespace(_free_noise_context_length=length, _free_noise_context_stride=stride,
                           _free_noise_noise_type="shuffle_context", vae_scale_factor=8)
    ref = AnimateDiffFreeNoiseMixin._prepare_latents_free_noise(
        pipe, 1, 4, frames, 64, 64, torch.float32, "cpu", torch.Generator().manual_seed(7))  # (1, C, F, h, w)
    g = torch.Generator().manual_seed(7)
    base = torch.randn((1, 4, frames, 8, 8), generator=g)  # the same draw diffusers makes, then the same generator
    ours = freenoise.shuffle_context(base[0].transpose(0, 1), length, stride, g)
    assert torch.equal(ours, ref[0].transpose(0, 1))


def test_freenoise_structure():
    noise = torch.randn(40, 4, 2, 2)
    out = freenoise.reschedule(noise, 3, 16, 4)
    assert torch.equal(out[:16], noise[:16])
    for start in range(16, 40, 4):  # each stride region is a permutation of the region 16 frames earlier
        src = out[start - 16:start - 12]
        dst = out[start:start + 4]
        assert sorted(src.flatten(1).sum(1).tolist()) == sorted(dst.flatten(1).sum(1).tolist())
    assert torch.equal(freenoise.reschedule(noise, 3, 16, 4), out)  # deterministic in the seed
    assert torch.equal(freenoise.reschedule(noise[:12], 3, 16, 4), noise[:12])
    rep = freenoise.reschedule(noise, 3, 16, 4, "repeat_context")
    assert torch.equal(rep[16:32], noise[:16]) and torch.equal(rep[32:], noise[:8])


# -- FreeInit -------------------------------------------------------------------------------------------------------

def _reference_filter(shape, kind, n, d_s, d_t):
    """The authors' freeinit_utils.py filters (loops over every frequency, Python floats stored into a float32
    mask), as written in the paper's code; a float32 numpy array stands in for their float32 tensor (faster to fill)."""
    T, H, W = shape[-3], shape[-2], shape[-1]
    mask = np.zeros(shape, dtype=np.float32)
    if kind == "box":
        threshold_s = round(int(H // 2) * d_s)
        threshold_t = round(T // 2 * d_t)
        cframe, crow, ccol = T // 2, H // 2, W // 2
        mask[..., cframe - threshold_t:cframe + threshold_t, crow - threshold_s:crow + threshold_s,
             ccol - threshold_s:ccol + threshold_s] = 1.0
        return torch.from_numpy(mask)
    for t in range(T):
        for h in range(H):
            for w in range(W):
                d_square = (((d_s / d_t) * (2 * t / T - 1)) ** 2 + (2 * h / H - 1) ** 2 + (2 * w / W - 1) ** 2)
                if kind == "gaussian":
                    mask[..., t, h, w] = math.exp(-1 / (2 * d_s ** 2) * d_square)
                elif kind == "butterworth":
                    mask[..., t, h, w] = 1 / (1 + (d_square / d_s ** 2) ** n)
                else:
                    mask[..., t, h, w] = 1 if d_square <= d_s * 2 else 0
    return torch.from_numpy(mask)


def check_filter(shape, kind, d_s, d_t, n):
    """Bitwise against the authors' loops, and against diffusers' copy of them (which ships all but the box)."""
    ours = freeinit.low_pass_filter(shape, kind, d_s, d_t, n)
    assert torch.equal(ours, _reference_filter(shape, kind, n, d_s, d_t))
    if kind != "box":
        from diffusers.pipelines.free_init_utils import FreeInitMixin

        assert torch.equal(ours, FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", kind, n, d_s, d_t))


# the largest shape is the docs' "up to 32x64x64" (16 frames of a 512x512 latent's double)
@pytest.mark.parametrize("kind", freeinit.FILTERS)
@pytest.mark.parametrize("shape,d_s,d_t,n", [((16, 8, 8), 0.25, 0.25, 4), ((9, 6, 10), 0.4, 0.1, 2),
                                             ((32, 64, 64), 0.25, 0.25, 4)])
def test_freeinit_filters_match_the_reference(kind, shape, d_s, d_t, n):
    check_filter(shape, kind, d_s, d_t, n)
    assert torch.equal(freeinit.low_pass_filter(shape, kind, 0.0, d_t, n), torch.zeros(shape))


def check_mix():
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(1, 4, 16, 8, 8, generator=g), torch.randn(1, 4, 16, 8, 8, generator=g)
    lpf = freeinit.low_pass_filter((16, 8, 8))
    ref = FreeInitMixin._apply_freq_filter(None, x, noise, lpf)
    # ours takes ComfyUI's frames-first latents
    ours = freeinit.freq_mix_frames_first(x[0].transpose(0, 1), noise[0].transpose(0, 1), lpf).transpose(0, 1)
    assert torch.equal(ours, ref[0])
    return x, noise, lpf


def test_freeinit_mix_matches_the_reference():
    x, noise, lpf = check_mix()
    # all-pass keeps x, all-stop gives the noise
    assert torch.allclose(freeinit.freq_mix_3d(x, noise, torch.ones(16, 8, 8)), x, atol=1e-5)
    assert torch.allclose(freeinit.freq_mix_3d(x, noise, torch.zeros(16, 8, 8)), noise, atol=1e-5)
    low = fft.fftshift(fft.fftn(freeinit.freq_mix_3d(x, noise, lpf), dim=(-3, -2, -1)), dim=(-3, -2, -1))
    assert torch.isfinite(low.real).all()


# -- mutation check: each mutation below passed the tolerances these tests used before they asserted bitwise ---------

def test_mutation_filter_in_float32(monkeypatch):
    reference = freeinit.low_pass_filter((16, 8, 8))
    mutations.freeinit_filter_in_float32(monkeypatch)
    assert (freeinit.low_pass_filter((16, 8, 8)) - reference).abs().max() <= 1e-6  # within the old bound
    with pytest.raises(AssertionError):
        check_filter((16, 8, 8), "butterworth", 0.25, 0.25, 4)


def test_mutation_mix_rearranged(monkeypatch):
    x, noise, lpf = check_mix()
    reference = freeinit.freq_mix_3d(x, noise, lpf)
    mutations.freeinit_mix_rearranged(monkeypatch)
    assert (freeinit.freq_mix_3d(x, noise, lpf) - reference).abs().max() <= 1e-5  # within the old bound
    with pytest.raises(AssertionError):
        check_mix()
