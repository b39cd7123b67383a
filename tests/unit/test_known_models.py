"""models_info labels files by name and verifies size and sha256; it never decides a format."""

from __future__ import annotations

import hashlib

from comfyui_animapose.animapose.known_models import entries, label_file


def test_catalogues_load_and_cover_the_releases():
    motion = {e["file_name"]: e for e in entries("motion_modules")}
    for name in ("mm_sd_v14.ckpt", "mm_sd_v15.ckpt", "mm_sd_v15_v2.ckpt", "v3_sd15_mm.ckpt", "mm_sdxl_v10_beta.ckpt",
                 "v3_sd15_adapter.ckpt", "v2_lora_ZoomIn.ckpt"):
        assert name in motion, name
    assert motion["mm_sd_v15_v2.ckpt"]["position_length"] == 32
    assert len(motion["mm_sd_v15_v2.ckpt"]["sha256"]) == 64
    for e in motion.values():
        assert e["source"].startswith("https://") and e["family"] and e["recommended_schedule"]
    dreampose = {e["file_name"] for e in entries("dreampose")}
    assert {"unet_epoch_20.pth", "adapter_20.pth"} <= dreampose


def test_label_and_verify(tmp_path):
    f = tmp_path / "mm_sd_v15_v2.ckpt"
    f.write_bytes(b"not the release")
    sha = hashlib.sha256(b"not the release").hexdigest()
    # the real catalogue: right name, wrong size
    label = label_file("motion_modules", str(f), f.name)
    assert "AnimateDiff v2" in label and "WARNING" in label and "truncated or a different file" in label
    base = {"file_name": f.name, "title": "T", "source": "https://example.org/x"}
    ok = label_file("motion_modules", str(f), f.name, ({**base, "size_bytes": 15, "sha256": sha},))
    assert ok.endswith("sha256 verified")
    bad = label_file("motion_modules", str(f), f.name, ({**base, "size_bytes": 15, "sha256": "0" * 64},))
    assert "WARNING: sha256 differs" in bad
    assert label_file("motion_modules", str(f), "my_finetune.ckpt") is None
