"""The DreamPose loaders' inputs: file kinds from key names (no code run, no names trusted), and pose sources that
stay inside ComfyUI's input directory (folders and .zip archives of .npy UV maps)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from comfyui_animapose.animapose.dreampose import file_kinds
from comfyui_animapose.animapose.dreampose.file_kinds import (
    ADAPTER,
    CLIP_VISION,
    UNET,
    UNKNOWN,
    VAE,
    file_kind,
    order_by_kind,
)
from comfyui_animapose.animapose.dreampose.pose_sources import (
    check_pose_source,
    list_pose_sources,
    load_pose_source,
    resolve_pose_source,
)
from comfyui_animapose.animapose.errors import AnimaPoseError


def _t():
    return torch.zeros(1)


UNET_KEYS = {"conv_in.weight": torch.zeros(320, 14, 3, 3), "time_embedding.linear_1.weight": _t(),
             "down_blocks.0.resnets.0.conv1.weight": _t(), "conv_out.weight": _t()}
ADAPTER_KEYS = {"vae2clip.weight": _t(), "vae2clip.bias": _t(), "linear1.weight": _t(), "linear1.bias": _t()}
VAE_KEYS = {"encoder.conv_in.weight": _t(), "decoder.up_blocks.0.resnets.0.norm1.weight": _t(), "quant_conv.weight": _t()}
CLIP_KEYS = {"vision_model.embeddings.patch_embedding.weight": _t()}


@pytest.fixture
def model_dir(tmp_path):
    # names deliberately misleading: the kind comes from the keys
    torch.save({f"module.{k}": v for k, v in UNET_KEYS.items()}, tmp_path / "vae_unet_looking.pth")
    torch.save(ADAPTER_KEYS, tmp_path / "unet_epoch_1.pth")
    save_file(VAE_KEYS, str(tmp_path / "adapter_7.safetensors"))
    save_file(CLIP_KEYS, str(tmp_path / "clip.safetensors"))
    (tmp_path / "notes.pth").write_bytes(b"not a zip at all")
    with open(tmp_path / "legacy.ckpt", "wb") as f:  # a pre-zip torch pickle: unknown, listed after the right kind
        pickle.dump({"a": 1}, f)
    return tmp_path


def test_kinds_from_keys(model_dir):
    kinds = {p.name: file_kind(str(p)) for p in model_dir.iterdir()}
    assert kinds == {"vae_unet_looking.pth": UNET, "unet_epoch_1.pth": ADAPTER, "adapter_7.safetensors": VAE,
                     "clip.safetensors": CLIP_VISION, "notes.pth": UNKNOWN, "legacy.ckpt": UNKNOWN}


def test_reading_kinds_runs_no_pickled_code(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"conv_in.weight": _t(), "down_blocks.0.x": _t(), "payload": Boom()}, tmp_path / "evil.pth")
    assert file_kind(str(tmp_path / "evil.pth")) == UNET
    assert not (tmp_path / "pwned").exists()


def test_order_puts_the_right_kind_first_and_keeps_every_file(model_dir):
    names = sorted(p.name for p in model_dir.iterdir())
    paths = {n: str(model_dir / n) for n in names}
    for kind, first in ((UNET, "vae_unet_looking.pth"), (ADAPTER, "unet_epoch_1.pth"), (VAE, "adapter_7.safetensors")):
        ordered = order_by_kind(names, paths, kind)
        assert ordered[0] == first and sorted(ordered) == names
        # unknown files come right after the right kind, other kinds last
        assert set(ordered[1:3]) == {"legacy.ckpt", "notes.pth"}


def test_kind_cache_follows_mtime(tmp_path):
    p = tmp_path / "x.safetensors"
    save_file(VAE_KEYS, str(p))
    assert file_kind(str(p)) == VAE
    save_file(ADAPTER_KEYS, str(p))
    os.utime(p, ns=(os.stat(p).st_atime_ns, os.stat(p).st_mtime_ns + 10**9))
    assert file_kind(str(p)) == ADAPTER
    assert len(file_kinds._cache) >= 2


# -- pose sources -------------------------------------------------------------------------------------------------

def _uv(seed: int, h: int = 8, w: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).random((2, h, w), dtype=np.float32)


@pytest.fixture
def input_dir(tmp_path):
    root = tmp_path / "input"
    (root / "dance").mkdir(parents=True)
    for i in (0, 1, 2, 10):
        np.save(root / "dance" / f"frame_{i}_densepose.npy", _uv(i))
    (root / "empty").mkdir()
    (root / "library" / "walk").mkdir(parents=True)
    np.save(root / "library" / "walk" / "frame_0_densepose.npy", _uv(5))
    (root / "photo.png").write_bytes(b"png")
    with zipfile.ZipFile(root / "dance.zip", "w") as zf:
        for i in (10, 2, 0, 1):
            buf = io.BytesIO()
            np.save(buf, _uv(i))
            zf.writestr(f"clip/frame_{i}_densepose.npy", buf.getvalue())
    outside = tmp_path / "secret"
    outside.mkdir()
    np.save(outside / "frame_0_densepose.npy", _uv(9))
    return root


def test_lists_folders_with_npy_and_archives(input_dir):
    assert list_pose_sources(str(input_dir)) == ["dance", "dance.zip", "library/walk"]


def test_folder_and_archive_give_the_same_sequence(input_dir):
    a = load_pose_source(str(input_dir), "dance")
    b = load_pose_source(str(input_dir), "dance.zip")
    assert a.shape == (4, 2, 8, 6)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a[3], torch.from_numpy(_uv(10)))  # natural order: 0, 1, 2, 10
    assert check_pose_source(str(input_dir), "dance.zip") == 4


@pytest.mark.parametrize("value", ["../secret", "/etc", "dance/../../secret", "..", "C:/Windows", "\\\\server\\x",
                                   "", "."])
def test_paths_outside_the_input_folder_are_refused(input_dir, value):
    if value == "/etc":
        value = str(input_dir.parent / "secret")  # an absolute path to a real pose folder
    with pytest.raises(AnimaPoseError) as e:
        resolve_pose_source(str(input_dir), value, "folder")
    assert e.value.input_name == "folder" and "input folder" in str(e.value) and "Fix:" in str(e.value)


def test_bad_sources_fail_the_cheap_check(input_dir):
    with pytest.raises(AnimaPoseError, match="holds no .npy"):
        check_pose_source(str(input_dir), "empty")
    with pytest.raises(AnimaPoseError, match="not a folder or a .zip"):
        resolve_pose_source(str(input_dir), "photo.png")
    with pytest.raises(AnimaPoseError, match="does not exist"):
        resolve_pose_source(str(input_dir), "nope")
    np.save(input_dir / "dance" / "frame_3_densepose.npy", np.zeros((3, 8, 6), np.float32))  # IUV, not UV
    with pytest.raises(AnimaPoseError, match=r"shape \(2, H, W\)"):
        check_pose_source(str(input_dir), "dance")


def test_archive_with_pickled_array_is_refused(input_dir):
    with zipfile.ZipFile(input_dir / "evil.zip", "w") as zf:
        buf = io.BytesIO()
        np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
        zf.writestr("frame_0_densepose.npy", buf.getvalue())
    with pytest.raises(AnimaPoseError):
        load_pose_source(str(input_dir), "evil.zip")


# -- archives that would cost more than their poses need ----------------------------------------------------------

def _refused_quickly(call, words: str, peak_mb: float = 16.0):
    """The refusal names the input, the problem and a fix, takes under 2 s, and allocates almost nothing (numpy
    reports its arrays to tracemalloc, so unpacking the data would show)."""
    import time
    import tracemalloc

    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(AnimaPoseError) as e:
            call()
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert e.value.input_name == "folder" and words in e.value.problem and e.value.fix, str(e.value)
    assert seconds < 2.0, f"took {seconds:.1f} s"
    assert peak < peak_mb, f"allocated {peak:.0f} MB"
    return e.value


def _npy_bytes(header: dict, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def test_archive_declaring_a_512_mb_map_is_refused_before_unpacking(input_dir):
    """About 500 KB packed, one (2, 8192, 8184) float32 map of zeros (512 MB, under the old 512 MiB member limit):
    refused from the archive's directory when the prompt is queued and when it is read."""
    import shutil

    from comfyui_animapose.workshop.fixtures.dreampose import pose_bomb_zip

    shutil.copy(pose_bomb_zip(), input_dir / "bomb.zip")
    assert (input_dir / "bomb.zip").stat().st_size < 2**20
    for call in (check_pose_source, load_pose_source):
        err = _refused_quickly(lambda call=call: call(str(input_dir), "bomb.zip", "folder"), "unpacks to 512 MB")
        assert "frame_0_densepose.npy" in err.problem and "4096x4096" in err.problem


def _zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


F32 = {"descr": "<f4", "fortran_order": False}


@pytest.mark.parametrize("data, words", [
    # a small map padded with 64 MB of zeros: more than its header needs
    (_npy_bytes({**F32, "shape": (2, 8, 6)}, _uv(0).tobytes() + bytes(64 * 2**20)), "header describes"),
    (_npy_bytes({**F32, "shape": (2, 8, 6)}, _uv(0).tobytes()[:100]), "header describes"),  # cut short
    (_npy_bytes({**F32, "shape": (2, 5000, 10)}, bytes(2 * 5000 * 10 * 4)), "1 to 4096 pixels a side"),
    (_npy_bytes({**F32, "shape": (2, 0, 6)}, b""), "1 to 4096 pixels a side"),
    (_npy_bytes({"descr": "<f16", "fortran_order": False, "shape": (2, 8, 6)}, bytes(2 * 8 * 6 * 16)), "float128"),
    # a version 2 header that claims to be 2 GB long: only 64 KB of it is ever read
    (b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + bytes(64 * 2**20), "not a readable .npy"),
])
def test_archive_members_are_checked_from_their_headers(input_dir, data, words):
    _zip(input_dir / "odd.zip", {"frame_0_densepose.npy": data})
    for call in (check_pose_source, load_pose_source):
        _refused_quickly(lambda call=call: call(str(input_dir), "odd.zip", "folder"), words)


def test_folder_files_are_checked_from_their_headers(input_dir):
    """A folder's files follow the same rules; a sparse file declaring a 512 MB map is refused without reading."""
    folder = input_dir / "huge"
    folder.mkdir()
    with open(folder / "frame_0_densepose.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {**F32, "shape": (2, 8192, 8184)})
        f.truncate(f.tell() + 2 * 8192 * 8184 * 4)
    for call in (check_pose_source, load_pose_source):
        _refused_quickly(lambda call=call: call(str(input_dir), "huge", "folder"), "8184x8192 pose map")
    (input_dir / "dance" / "frame_1_densepose.npy").write_bytes(_npy_bytes({**F32, "shape": (2, 8, 6)}, b"\0" * 9))
    _refused_quickly(lambda: load_pose_source(str(input_dir), "dance", "folder"), "header describes")


def test_sequence_limits(input_dir, monkeypatch):
    """The float32 sequence the loader returns (frames x 2 x H x W x 4 bytes) and the number of maps are capped;
    the limits are checked before any data is read."""
    from comfyui_animapose.animapose.dreampose import pose_sources

    monkeypatch.setattr(pose_sources, "MAX_POSE_BYTES", 3 * 2 * 8 * 6 * 4)  # three of the 8x6 maps
    for value in ("dance", "dance.zip"):
        _refused_quickly(lambda value=value: check_pose_source(str(input_dir), value, "folder"),
                         "4 pose maps of 6x8, 0.0 GB as float32")
    monkeypatch.setattr(pose_sources, "MAX_POSE_BYTES", 4 * 2 * 8 * 6 * 4)
    assert check_pose_source(str(input_dir), "dance.zip") == 4
    monkeypatch.setattr(pose_sources, "MAX_FRAMES", 3)
    for value in ("dance", "dance.zip"):
        _refused_quickly(lambda value=value: load_pose_source(str(input_dir), value, "folder"), "at most 3 are read")


def test_fortran_order_and_float64_maps_load_like_float32(input_dir):
    folder = input_dir / "orders"
    folder.mkdir()
    np.save(folder / "frame_0_densepose.npy", np.asfortranarray(_uv(0)))
    np.save(folder / "frame_1_densepose.npy", _uv(1).astype(np.float64))
    out = load_pose_source(str(input_dir), "orders")
    assert out.dtype == torch.float32 and out.shape == (2, 2, 8, 6)
    np.testing.assert_array_equal(out[0].numpy(), _uv(0))
    np.testing.assert_array_equal(out[1].numpy(), _uv(1))
