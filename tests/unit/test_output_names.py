"""Names of the files the pack writes: each rule refuses with the rule and a fix, and good names pass unchanged."""

from __future__ import annotations

import os

import pytest

from comfyui_animapose.animapose import output_names
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.output_names import MAX_NAME_BYTES, MAX_PART_BYTES, check_output_name


def refused(value, *args, **kwargs) -> str:
    with pytest.raises(AnimaPoseError) as err:
        check_output_name(value, "save_name", *args, **kwargs)
    message = str(err.value)
    assert message.startswith("input 'save_name': ") and "Fix: " in message, message
    return message


@pytest.mark.parametrize("name", ["my_motion", "walk cycle (v2)", "run-2.5+fast", "Tänzerin_01", "走る", "sub/my_motion",
                                  "a/b/c/d", "x" * MAX_PART_BYTES, "mm_sd_v15_v2_trained", "con_tour", "v2"])
def test_good_names_pass_unchanged(name):
    assert check_output_name(name, "save_name") == name


@pytest.mark.parametrize("name, words", [
    ("bad\0name", "'\\x00' (U+0000)"),
    ("a\nb", "U+000A"),
    ("a\\b", "(not \\)"),
    ("C:x", "':' (U+003A)"),
    ("x\u202egnp", "U+202E"),  # right-to-left override: shows a different name than is written
    ("\ud800", "U+D800"),  # a lone surrogate cannot even be encoded as a file name
    ("a*b?", "'*' (U+002A), '?' (U+003F)"),
    ("%date%", "U+0025"),
])
def test_characters_outside_the_allowed_set(name, words):
    message = refused(name)
    assert "contains" in message and words in message and "use only letters, digits" in message


def test_too_long_is_refused_with_the_limit_not_an_os_error():
    message = refused("x" * 300)
    assert "is 300 characters long; at most 150" in message and "(and 260 more characters)" in message
    assert "x" * 41 not in message  # the name is shortened in the message
    part = refused("a/" + "y" * (MAX_PART_BYTES + 1))
    assert f"101 characters long; a folder or file name may have at most {MAX_PART_BYTES}" in part
    # letters outside A-Z take more bytes, and bytes are what file systems limit
    assert "60 characters (120 bytes in UTF-8) long; a folder or file name" in refused("ä" * 60)
    whole = "é" * 40 + "/" + "é" * 40  # each part 80 bytes, 161 in all
    assert f"81 characters (161 bytes in UTF-8) long; at most {MAX_NAME_BYTES}" in refused(whole)


@pytest.mark.parametrize("name, words", [
    ("/abs", "is an absolute path"),
    ("/etc/passwd", "is an absolute path"),
    ("../x", "the folder part '..'"),
    ("../../checkpoints/evil", "the folder part '..'"),
    ("sub/../../x", "the folder part '..'"),
    ("./x", "the folder part '.'"),
    ("sub//x", "an empty folder name"),
    ("sub/", "an empty folder name"),
    (".hidden", "starts a name with a dot"),
    ("sub/.hidden", "starts a name with a dot"),
    (".config/x", "starts a name with a dot"),
    (" lead", "starts or ends with a space"),
    ("trail ", "starts or ends with a space"),
    ("dot.", "ends with a dot"),
    ("NUL", "device name on Windows"),
    ("sub/com1.backup", "device name on Windows"),
    ("walk.safetensors", "ends with .safetensors; the extension is added"),
    ("walk.CKPT", "ends with .ckpt"),
])
def test_path_parts_hidden_and_odd_names(name, words):
    assert words in refused(name)


def test_empty():
    assert "the name is empty" in refused("")
    assert "the name is empty" in refused("   ")
    assert check_output_name("", "save_name", optional=True) == ""
    assert check_output_name("  ", "save_name", optional=True) == ""
    assert "is not text" in refused(None)
    assert "is not text" in refused(7)


@pytest.mark.parametrize("name", ["mm_sd_v15_v2", "MM_SD_V15_V2", "v2_lora_ZoomIn", "unet_epoch_20", "sub/pia",
                                  "hsxl_temporal_layers.f16", "clip-vit-base-patch32"])
def test_names_of_released_models(name):
    message = refused(name)
    assert "is the name of a released model" in message and "_trained" in message


def test_folder_checks(tmp_path):
    root, extra = tmp_path / "models" / "animatediff_models", tmp_path / "extra"
    root.mkdir(parents=True)
    extra.mkdir()
    (root / "walk.ckpt").write_bytes(b"x")
    (extra / "jump.PT").write_bytes(b"x")
    (root / "notes.txt").write_text("not listed")
    (root / "run.safetensors").write_bytes(b"x")
    roots = [str(root), str(extra)]
    kw = dict(ext=".safetensors", listed={".ckpt", ".pt", ".pth", ".safetensors"}, label="models/animatediff_models")

    message = refused("walk", roots, **kw)
    assert "models/animatediff_models already has 'walk.ckpt'; 'walk.safetensors' beside it" in message
    assert str(tmp_path) not in message  # the server's own path is not shown
    assert "'jump.PT'" in refused("jump", roots, **kw)  # any folder the loader lists, extensions in any case
    assert check_output_name("notes", roots, **kw) == "notes"  # not a listed extension
    assert check_output_name("run", roots, **kw) == "run"  # same extension: numbered when saved, never overwritten
    assert check_output_name("walk", roots, label="x") == "walk"  # no extension given: no twin check
    assert check_output_name("new/deeper/name", roots, **kw) == "new/deeper/name"
    (root / "sub").mkdir()
    (root / "sub" / "walk.pth").write_bytes(b"x")
    assert "already has 'sub/walk.pth'" in refused("sub/walk", roots, **kw)

    # a sub-folder that is a link to elsewhere, and a file where a folder is needed
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    assert "leads outside models/animatediff_models" in refused("escape/x", roots, **kw)
    assert "leads outside" in refused("escape/deeper/x", roots, **kw)
    (root / "inside").symlink_to(root / "new", target_is_directory=True)
    assert check_output_name("inside/x", roots, **kw) == "inside/x"  # a link that stays inside is fine
    assert "'run.safetensors' in models/animatediff_models is a file, not a folder" in refused(
        "run.safetensors/x", roots, **kw)


def test_folder_that_cannot_be_written(tmp_path, monkeypatch):
    root = tmp_path / "dreampose"
    root.mkdir()
    seen = []

    def access(path, mode):
        seen.append(os.fspath(path))
        return False

    monkeypatch.setattr(output_names.os, "access", access)
    message = refused("subject", [str(root)], label="models/dreampose")
    assert "models/dreampose cannot be written by the server" in message and seen == [str(root.resolve())]
    # a sub-folder that does not exist yet: the folder it would be made in is what must be writable
    seen.clear()
    refused("new/sub/subject", [str(root)], label="models/dreampose")
    assert seen == [str(root.resolve())]


def test_dreampose_sets_number_past_every_listed_file_and_go_into_sub_folders(tmp_path):
    """Save DreamPose's counter skips numbers a file of the set has under any extension or in another folder the
    loader lists, so the new set never shares a listed name; a prefix with sub-folders writes there."""
    from comfyui_animapose.animapose.dreampose.adapter import EmbeddingAdapter
    from comfyui_animapose.animapose.dreampose.checkpoint import next_counter, save_dreampose_set

    main, extra = tmp_path / "dreampose", tmp_path / "extra"
    (main / "people").mkdir(parents=True)
    (extra / "people").mkdir(parents=True)
    (main / "people" / "anna_00001_unet.pth").write_bytes(b"x")
    (extra / "people" / "anna_00002_adapter.safetensors").write_bytes(b"x")
    (main / "people" / "anna_00007_vae.safetensors.tmp").write_bytes(b"x")  # left by a crash mid-save
    (main / "people" / "anna_b_00009_unet.safetensors").write_bytes(b"x")  # another prefix
    assert next_counter(main / "people", "anna", ["unet", "adapter", "vae"]) == 8
    assert next_counter(main / "missing", "anna", ["unet"]) == 1

    paths = save_dreampose_set(None, EmbeddingAdapter(), None, str(main), "people/anna", [str(extra)])
    assert paths == [main / "people" / "anna_00008_adapter.safetensors"] and paths[0].is_file()
