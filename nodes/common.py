"""What every node of the pack shares: the ID prefix, the category root, model folders and error wording."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sys

from comfy_api.latest import io, ui

from ..animapose.errors import AnimaPoseError
from .search_terms import with_search_terms

PREFIX = "AnimaPose_"
CATEGORY = "AnimaPose"
MOTION_CATEGORY = f"{CATEGORY}/AnimateDiff"
DREAMPOSE_CATEGORY = f"{CATEGORY}/DreamPose"

# Shared with AnimateDiff-Evolved on purpose: users' motion modules already live there.
MOTION_MODELS_FOLDER = "animatediff_models"
MOTION_LORA_FOLDER = "animatediff_motion_lora"
DREAMPOSE_FOLDER = "dreampose"
DENSEPOSE_FOLDER = "densepose"
# comfyui_controlnet_aux downloads its DensePose TorchScript files here (below its ckpts folder, or below
# AUX_ANNOTATOR_CKPTS_PATH when set); listing that folder too means nothing is downloaded twice.
CONTROLNET_AUX_DENSEPOSE = os.path.join("LayerNorm", "DensePose-TorchScript-with-hint-image")
DENSEPOSE_EXTENSIONS = {".torchscript", ".pt", ".pth", ".ts"}


log = logging.getLogger(__name__)
WARNING_LINE = re.compile(r"\bwarning\b", re.I)


def warnings_first(text: str) -> str:
    """Warning lines first (in their order), then the rest: a truncated-download warning is the first thing read."""
    lines = text.split("\n")
    warn = [ln for ln in lines if WARNING_LINE.search(ln)]
    return "\n".join(warn + [ln for ln in lines if not WARNING_LINE.search(ln)])


def node_info(display_name: str, text: str) -> ui.PreviewText:
    """What a node detected or applied, for the user: the UI text output (the pack's JS shows it on the node again
    when the node's result comes from the cache), the same text as the node's progress text (which both of the
    frontend's renderers draw on the node themselves, with or without the pack's JS), and each warning line in the
    log under the node's display name, where a user looks when a run ends."""
    text = warnings_first(text)
    for line in text.split("\n"):
        if WARNING_LINE.search(line):
            log.warning("%s: %s", display_name, line)
    # Nodes 2.0 draws progress text as Markdown, which joins lines unless they end in two spaces
    _progress_text(text.replace("\n", "  \n"))
    return ui.PreviewText(text)


def _progress_text(text: str) -> None:
    # The server module exists only when ComfyUI serves; in-process use (tests, scripts) has no node to write on.
    server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if server is None:
        return
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    if context is not None:
        server.send_progress_text(text, context.node_id)


def register_model_folders() -> None:
    import folder_paths

    for name in (MOTION_MODELS_FOLDER, MOTION_LORA_FOLDER, DREAMPOSE_FOLDER):
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
        # A folder registered for the first time has no extension filter and would list every file.
        folder_paths.folder_names_and_paths[name][1].update(folder_paths.supported_pt_extensions)
    folder_paths.add_model_folder_path(DENSEPOSE_FOLDER, os.path.join(folder_paths.models_dir, DENSEPOSE_FOLDER))
    for path in controlnet_aux_densepose_folders():
        folder_paths.add_model_folder_path(DENSEPOSE_FOLDER, path)
    folder_paths.folder_names_and_paths[DENSEPOSE_FOLDER][1].update(DENSEPOSE_EXTENSIONS)


def controlnet_aux_densepose_folders() -> list[str]:
    """Where comfyui_controlnet_aux keeps densepose_r50_fpn_dl.torchscript / densepose_r101_fpn_dl.torchscript."""
    import folder_paths

    roots = []
    if os.environ.get("AUX_ANNOTATOR_CKPTS_PATH"):
        roots.append(os.environ["AUX_ANNOTATOR_CKPTS_PATH"])
    for custom_nodes in folder_paths.get_folder_paths("custom_nodes"):
        try:
            entries = sorted(os.scandir(custom_nodes), key=lambda e: e.name)
        except OSError:
            continue
        # the folder name depends on how it was installed (git clone, zip download, manager)
        roots += [os.path.join(e.path, "ckpts") for e in entries
                  if e.is_dir() and "controlnet_aux" in e.name.lower().replace("-", "_")]
    return [os.path.join(root, CONTROLNET_AUX_DENSEPOSE) for root in roots]


@contextlib.contextmanager
def node_errors(display_name: str):
    """Prefixes runtime errors with the node's name, so the message names node, input and fix."""
    try:
        yield
    except AnimaPoseError as e:
        raise e.for_node(display_name) from e.__cause__


def full_path(folder: str, name: str, input_name: str) -> str:
    import folder_paths

    path = folder_paths.get_full_path(folder, name)
    if path is None:
        searched = ", ".join(folder_paths.get_folder_paths(folder))
        raise AnimaPoseError(input_name, f"'{name}' was not found in {searched}",
                             f"put the file into models/{folder}/ and refresh the node list (press R)")
    return path


def checked_output_name(value, input_name: str, folder: str | None, *, optional: bool = False,
                        ext: str | None = None) -> str:
    """``animapose.output_names.check_output_name`` for a name input of a node that writes into a model folder
    (``folder`` None: the text only, while the folder is not known yet). Raises AnimaPoseError without the node's
    name: callers add it."""
    import folder_paths

    from ..animapose.output_names import check_output_name

    if folder is None:
        return check_output_name(value, input_name, optional=optional)
    return check_output_name(value, input_name, folder_paths.get_folder_paths(folder), optional=optional, ext=ext,
                             listed=folder_paths.folder_names_and_paths[folder][1], label=f"models/{folder}")


class PackNode(io.ComfyNode):
    """Base of every node of the pack: before ``execute`` runs, each widget value is checked against the node's own
    schema, because ComfyUI 0.3.75 validates neither V3 combo values nor non-finite numbers (an API client can
    send ``NaN`` or an unknown option). Nothing is cloned or loaded before the values are known to be good.
    Subclasses set ``DISPLAY`` (their display name, used in every error message)."""

    DISPLAY = "AnimaPose"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("execute")
        if isinstance(own, classmethod) and not getattr(own.__func__, "_animapose_checked", False):
            cls.execute = classmethod(_checked(own.__func__))
        schema = cls.__dict__.get("define_schema")
        if isinstance(schema, classmethod) and not getattr(schema.__func__, "_animapose_terms", False):
            cls.define_schema = classmethod(_with_terms(schema.__func__))


def queue_check(node_cls, values: dict, check=None) -> bool | str:
    """The body of a node's ``validate_inputs``, which ComfyUI runs when the prompt is queued, before anything runs.
    ComfyUI skips its own range and choice checks for the inputs ``validate_inputs`` names, so those are repeated
    first; then ``check()`` runs the parser the node's ``execute`` uses, so both refuse the same values. A linked
    input arrives as None (its value exists only when the graph runs; ``execute`` checks it then). Returns True or
    the message naming node, input, problem and fix."""
    try:
        check_inputs(node_cls, {k: v for k, v in values.items() if v is not None})
        if check is not None:
            check()
    except AnimaPoseError as e:
        return str(e.for_node(node_cls.DISPLAY))
    return True


def _with_terms(define_schema):
    @functools.wraps(define_schema)
    def define(cls):
        return with_search_terms(define_schema(cls), PREFIX)

    define._animapose_terms = True
    return define


def _checked(execute):
    @functools.wraps(execute)
    def run(cls, *args, **kwargs):
        check_inputs(cls, kwargs)
        return execute(cls, *args, **kwargs)

    run._animapose_checked = True
    return run


def check_inputs(node_cls, values: dict) -> None:
    """Raises AnimaPoseError (with the node's display name) for the first widget value its schema does not allow."""
    schema = node_cls.define_schema()
    for spec in schema.inputs:
        if spec.id not in values:
            continue
        problem = _widget_problem(spec, values[spec.id])
        if problem:
            raise AnimaPoseError(spec.id, *problem, node=node_cls.DISPLAY)


def _widget_problem(spec, value) -> tuple[str, str] | None:
    if value is None and spec.optional:
        return None
    if isinstance(spec, io.Combo.Input):
        options = list(spec.options or [])
        if isinstance(value, str) and value in options:
            return None
        shown = ", ".join(f"'{o}'" for o in options[:8]) + (", ..." if len(options) > 8 else "")
        what = f"'{value}'" if isinstance(value, str) else f"{value!r} (a {type(value).__name__}, not a name)"
        if not options:
            return (f"{what} cannot be used: the list of choices is empty",
                    "put the file into the model folder this input reads, then refresh the node list (press R)")
        return (f"{what} is not one of the {len(options)} choices",
                f"pick one of {shown} (press R to refresh file lists)")
    if isinstance(spec, (io.Float.Input, io.Int.Input)):
        kind = "a whole number" if isinstance(spec, io.Int.Input) else "a number"
        ok_type = isinstance(value, int) if isinstance(spec, io.Int.Input) else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            return f"{value!r} is not {kind}", f"enter {kind}, e.g. {spec.default}"
        if not math.isfinite(value):
            return (f"{value} is not a finite number (NaN or infinity would turn every frame black)",
                    f"enter a finite value, e.g. {spec.default}")
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            return f"{value} is outside {spec.min}..{spec.max}", f"enter a value between {spec.min} and {spec.max}"
        return None
    if isinstance(spec, io.Boolean.Input) and not isinstance(value, bool):
        return f"{value!r} is not true or false", "set the toggle"
    if isinstance(spec, io.String.Input) and not isinstance(value, str):
        return f"{value!r} is not text", "enter text"
    return None
