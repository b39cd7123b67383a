"""Files picked from ComfyUI's input folder are resolved with their links followed and must stay inside it: the
shared guard (``animapose.paths``) and every reader that uses it, with real links to folders and to files."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from comfyui_animapose.animapose import paths
from comfyui_animapose.animapose.dreampose.pose_sources import (
    check_pose_source,
    list_pose_sources,
    load_pose_source,
    resolve_pose_source,
)
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.addons.camera_trajectories import list_pose_files, load_pose_file
from comfyui_animapose.workshop.fixtures.camera_poses import pose_text

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX links")


def _uv(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 8, 6), dtype=np.float32)


def _pose_folder(path: Path, seeds=(0, 1)) -> Path:
    path.mkdir(parents=True)
    for i, seed in enumerate(seeds):
        np.save(path / f"frame_{i}_densepose.npy", _uv(seed))
    return path


def _pose_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(2):
            buf = io.BytesIO()
            np.save(buf, _uv(i))
            zf.writestr(f"frame_{i}_densepose.npy", buf.getvalue())
    return path


@pytest.fixture
def tree(tmp_path):
    """input/ with real pose folders, archives and camera files, links that stay inside, and links that lead out
    to twins of them in outside/."""
    root, outside = tmp_path / "input", tmp_path / "outside"
    _pose_folder(root / "dance")
    _pose_zip(root / "dance.zip")
    (root / "cams").mkdir()
    (root / "cams" / "orbit.txt").write_text(pose_text(4))
    _pose_folder(outside / "secret_poses")
    _pose_zip(outside / "secret.zip")
    (outside / "secret.txt").write_text(pose_text(4))
    (outside / "cams").mkdir()
    (outside / "cams" / "orbit.txt").write_text(pose_text(4))
    # leading out: a folder, an archive, a camera file, a folder above a camera file
    (root / "linked_out").symlink_to(outside / "secret_poses", target_is_directory=True)
    (root / "linked_out.zip").symlink_to(outside / "secret.zip")
    (root / "linked_out.txt").symlink_to(outside / "secret.txt")
    (root / "cams_out").symlink_to(outside / "cams", target_is_directory=True)
    # a real folder inside, one of whose files leads out
    mixed = _pose_folder(root / "mixed", seeds=(0,))
    (mixed / "frame_1_densepose.npy").symlink_to(outside / "secret_poses" / "frame_1_densepose.npy")
    # staying inside: a folder, an archive, a file of a folder, a camera file
    (root / "dance_again").symlink_to(root / "dance", target_is_directory=True)
    (root / "dance_again.zip").symlink_to(root / "dance.zip")
    inner = _pose_folder(root / "inner", seeds=(0,))
    (inner / "frame_1_densepose.npy").symlink_to(root / "dance" / "frame_1_densepose.npy")
    (root / "orbit_again.txt").symlink_to(root / "cams" / "orbit.txt")
    return root


def _refused(call, words: str = "leads outside ComfyUI's input folder", input_name: str = "folder"):
    with pytest.raises(AnimaPoseError) as e:
        call()
    assert e.value.input_name == input_name and words in e.value.problem and e.value.fix, str(e.value)
    return e.value


# -- the guard ----------------------------------------------------------------------------------------------------

def test_resolve_inside_follows_links(tree):
    fix = "pick another"
    assert paths.resolve_inside(str(tree), "dance_again", "folder", fix) == os.path.realpath(tree / "dance")
    for name in ("linked_out", "linked_out/frame_0_densepose.npy", "cams_out/orbit.txt"):
        _refused(lambda name=name: paths.resolve_inside(str(tree), name, "folder", fix))
    for name, words in (("../outside", "absolute paths and '..'"), ("/etc", "absolute paths"),
                        ("a\x00b", "NUL"), (".", "itself"), ("", "no path")):
        _refused(lambda name=name: paths.resolve_inside(str(tree), name, "folder", fix), words)


def test_root_reached_through_a_link_is_the_real_root(tree, tmp_path):
    """ComfyUI's input folder may itself be a link (to a data disk); its real location is the root."""
    alias = tmp_path / "input_alias"
    alias.symlink_to(tree, target_is_directory=True)
    assert paths.resolve_inside(str(alias), "dance", "folder", "x") == os.path.realpath(tree / "dance")
    _refused(lambda: paths.resolve_inside(str(alias), "linked_out", "folder", "x"))


def test_open_inside_checks_the_opened_file_again(tree, monkeypatch):
    """A link swapped in between the check and the open: the check passed for a file inside, but what opens is
    outside. The opened file's own location refuses it."""
    outside = os.path.realpath(tree / "linked_out" / "frame_0_densepose.npy")
    monkeypatch.setattr(paths, "require_inside", lambda *a, **k: outside)
    _refused(lambda: paths.open_inside(str(tree), str(tree / "dance" / "frame_0_densepose.npy"), "folder", "f.npy"),
             "changed into a link")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_open_inside_refuses_a_pipe_without_blocking(tree):
    os.mkfifo(tree / "dance" / "frame_2_densepose.npy")
    _refused(lambda: check_pose_source(str(tree), "dance"), "not a regular file")


# -- DensePose UV pose folders and archives -----------------------------------------------------------------------

def test_pose_sources_that_lead_out_are_not_listed(tree):
    listed = list_pose_sources(str(tree))
    assert {"dance", "dance.zip", "dance_again", "dance_again.zip", "inner", "mixed"} <= set(listed)
    assert not {"linked_out", "linked_out.zip"} & set(listed)


@pytest.mark.parametrize("value", ["linked_out", "linked_out.zip"])
def test_pose_sources_that_lead_out_are_refused(tree, value):
    for call in (resolve_pose_source, check_pose_source, load_pose_source):
        _refused(lambda call=call: call(str(tree), value, "folder"))


def test_pose_file_that_leads_out_is_refused(tree):
    """A real folder inside, one of whose .npy files is a link to a file outside: refused at the check and at the
    read, naming the file."""
    for call in (check_pose_source, load_pose_source):
        err = _refused(lambda call=call: call(str(tree), "mixed", "folder"), "is a link that leads outside")
        assert "frame_1_densepose.npy" in err.problem


def test_links_that_stay_inside_are_followed(tree):
    base = load_pose_source(str(tree), "dance")
    for value in ("dance_again", "dance_again.zip", "inner"):
        assert check_pose_source(str(tree), value) == 2
        np.testing.assert_array_equal(load_pose_source(str(tree), value).numpy(), base.numpy())


def test_file_turned_into_a_link_after_the_check_is_refused_at_the_read(tree):
    """The folder can change between the check at queue time and the read: the read checks again."""
    assert check_pose_source(str(tree), "dance") == 2
    target = tree / "dance" / "frame_1_densepose.npy"
    target.unlink()
    target.symlink_to(tree / "linked_out" / "frame_1_densepose.npy")
    _refused(lambda: load_pose_source(str(tree), "dance"), "is a link that leads outside")


# -- camera pose files --------------------------------------------------------------------------------------------

def test_camera_files_that_lead_out_are_not_listed_and_refused(tree):
    listed = list_pose_files(str(tree))
    assert "cams/orbit.txt" in listed and "orbit_again.txt" in listed
    assert not {"linked_out.txt", "cams_out/orbit.txt"} & set(listed)
    for name in ("linked_out.txt", "cams_out/orbit.txt"):
        _refused(lambda name=name: load_pose_file(str(tree), name), input_name="pose_file")
    assert load_pose_file(str(tree), "orbit_again.txt").frames == 4


def test_camera_file_turned_into_a_link_is_refused(tree):
    assert load_pose_file(str(tree), "cams/orbit.txt").frames == 4
    (tree / "cams" / "orbit.txt").unlink()
    (tree / "cams" / "orbit.txt").symlink_to(tree / "linked_out.txt")
    _refused(lambda: load_pose_file(str(tree), "cams/orbit.txt"), input_name="pose_file")
