"""The pack loads in the real ComfyUI and registers exactly its public nodes."""

from __future__ import annotations

EXPECTED_NODES = {
    "AnimaPose_LoadMotionModel",
    "AnimaPose_LoadMotionLoRA",
    "AnimaPose_ApplyMotionModel",
    "AnimaPose_ContextWindows",
    "AnimaPose_PIAImage",
    "AnimaPose_AnimateLCMI2VImage",
    "AnimaPose_LoadSparseCtrl",
    "AnimaPose_SparseCtrlKeyframes",
    "AnimaPose_LoadCameraCtrl",
    "AnimaPose_CameraTrajectory",
    "AnimaPose_ApplyCameraCtrl",
    "AnimaPose_PromptTravel",
    "AnimaPose_MotionMultival",
    "AnimaPose_MotionKeyframe",
    "AnimaPose_FreeNoise",
    "AnimaPose_FreeNoiseModel",
    "AnimaPose_FreeInitSampler",
    "AnimaPose_FreeInit",
    "AnimaPose_LoadDreamPose",
    "AnimaPose_LoadDreamPoseVAE",
    "AnimaPose_LoadCLIPVisionB32",
    "AnimaPose_DreamPoseImageConditioning",
    "AnimaPose_DensePoseUVEstimator",
    "AnimaPose_LoadDensePoseUV",
    "AnimaPose_PosesFromImages",
    "AnimaPose_PoseConditioning",
    "AnimaPose_DreamPoseGuider",
    "AnimaPose_SharedNoise",
    "AnimaPose_DreamPoseSampler",
    "AnimaPose_DreamPoseSamplerRay",
    "AnimaPose_DreamPoseDecode",
    "AnimaPose_SaveDreamPose",
    "AnimaPose_DreamPoseFinetuneUNet",
    "AnimaPose_DreamPoseFinetuneVAE",
    "AnimaPose_TrainMotionModule",
}


def test_exact_node_list(comfy_server):
    info = comfy_server.object_info()
    ours = {name for name, d in info.items() if "animapose" in d.get("python_module", "")}
    assert ours == EXPECTED_NODES


def test_every_node_documented(comfy_server):
    info = comfy_server.object_info()
    for name in EXPECTED_NODES:
        d = info[name]
        assert d["description"], f"{name} has no description"
        assert d["category"].startswith("AnimaPose"), d["category"]
        # display names hold the words users search for (issue 10), not the pack name or the ID
        assert d["display_name"] and not d["display_name"].startswith("AnimaPose_"), d["display_name"]
        assert all(n == n.lower() for n in d.get("output_name") or []), f"{name}: {d.get('output_name')}"
        for section in ("required", "optional"):
            for inp, spec in d["input"].get(section, {}).items():
                opts = spec[1] if len(spec) > 1 else {}
                assert opts.get("tooltip"), f"{name}.{inp} has no tooltip"
        assert all(d.get("output_tooltips", [])), f"{name} has an output without tooltip"


def test_pack_js_is_served(comfy_server):
    exts = comfy_server.get("/extensions")
    assert any(e.endswith("/animapose.js") for e in exts), exts


def test_translations_name_every_node(comfy_server):
    """The frontend names a node that has no custom title (the progress panel, among others) through ComfyUI's
    /i18n translations, else by its ID: the pack's locales/en/nodeDefs.json (workshop/authoring/locales.py) is served
    and matches /object_info."""
    info = comfy_server.object_info()
    served = comfy_server.get("/i18n").get("en", {}).get("nodeDefs", {})
    for name in EXPECTED_NODES:
        assert name in served, f"{name} is missing from locales/en/nodeDefs.json: run workshop/authoring/locales.py"
        assert served[name]["display_name"] == info[name]["display_name"], (name, served[name]["display_name"])
        assert served[name]["description"] == info[name]["description"], name
        # the frontend compiles translations as vue-i18n messages: '@' (linked message), '|' (plural) and braces
        # (placeholders) in a text break its start-up
        for text in served[name].values():
            assert not set(text) & set("@|{}"), f"{name}: {text!r} holds vue-i18n syntax"
