"""The DensePose model list: models/densepose plus the folder where comfyui_controlnet_aux keeps its TorchScript
DensePose files, so files users already downloaded are offered without a second copy."""

from __future__ import annotations

import folder_paths

from comfyui_animapose.nodes import common


def test_controlnet_aux_folder_is_listed(tmp_path, monkeypatch):
    custom_nodes = tmp_path / "custom_nodes"
    ckpts = custom_nodes / "comfyui_controlnet_aux" / "ckpts" / "LayerNorm" / "DensePose-TorchScript-with-hint-image"
    ckpts.mkdir(parents=True)
    (ckpts / "densepose_r101_fpn_dl.torchscript").write_bytes(b"x")
    (custom_nodes / "some_other_pack").mkdir()
    env_root = tmp_path / "aux_env"
    (env_root / "LayerNorm" / "DensePose-TorchScript-with-hint-image").mkdir(parents=True)
    (env_root / "LayerNorm" / "DensePose-TorchScript-with-hint-image" / "densepose_r50_fpn_dl.torchscript").write_bytes(b"x")
    models = tmp_path / "models"
    (models / "densepose").mkdir(parents=True)
    (models / "densepose" / "densepose_rcnn_R_50_FPN_DL_s1x_fp32.pt").write_bytes(b"x")
    (models / "densepose" / "readme.txt").write_text("not a model")
    monkeypatch.setenv("AUX_ANNOTATOR_CKPTS_PATH", str(env_root))
    monkeypatch.setattr(folder_paths, "models_dir", str(models))
    saved = {k: (list(v[0]), set(v[1])) for k, v in folder_paths.folder_names_and_paths.items()}
    try:
        folder_paths.folder_names_and_paths["custom_nodes"] = ([str(custom_nodes)], set())
        folder_paths.folder_names_and_paths.pop("densepose", None)
        common.register_model_folders()
        folder_paths.filename_list_cache.clear()
        names = folder_paths.get_filename_list("densepose")
        assert sorted(names) == ["densepose_r101_fpn_dl.torchscript", "densepose_r50_fpn_dl.torchscript",
                                 "densepose_rcnn_R_50_FPN_DL_s1x_fp32.pt"]
        assert folder_paths.get_full_path("densepose", "densepose_r101_fpn_dl.torchscript") == str(
            ckpts / "densepose_r101_fpn_dl.torchscript")
    finally:
        folder_paths.folder_names_and_paths.clear()
        folder_paths.folder_names_and_paths.update({k: (v[0], v[1]) for k, v in saved.items()})
        folder_paths.filename_list_cache.clear()
