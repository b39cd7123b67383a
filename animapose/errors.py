"""One exception type for every user-facing problem, so each message names the input and the fix.

Runtime code knows the input it was handed but not which node called it; the node layer adds its display name
(``nodes/common.py``), giving messages like::

    Apply AnimateDiff Motion Model: input 'motion_model': SDXL motion module on an SD1.5 model. Fix: load an SD1.5
    motion module (mm_sd_v15_v2, v3_sd15_mm, ...) or switch the checkpoint to SDXL.
"""

from __future__ import annotations


class AnimaPoseError(ValueError):
    # ComfyUI reports an error's type as its module and class name. The pack is imported under its folder's
    # absolute path, which would show the server's directory layout to every client and change with the install
    # place; this name is the same everywhere.
    __module__ = "animapose.errors"

    def __init__(self, input_name: str, problem: str, fix: str, node: str | None = None):
        self.input_name = input_name
        self.problem = problem.rstrip(".")
        self.fix = fix.rstrip(".")
        self.node = node
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{where}input '{self.input_name}': {self.problem}. Fix: {self.fix}."

    def for_node(self, node: str) -> "AnimaPoseError":
        self.node = node
        self.args = (str(self),)
        return self


def require_choice(value, choices, input_name: str) -> str:
    """``value`` when it is one of ``choices``; otherwise an error listing them (never a silent fallback)."""
    if isinstance(value, str) and value in choices:
        return value
    listed = ", ".join(f"'{c}'" for c in choices)
    raise AnimaPoseError(input_name, f"{value!r} is not one of the choices", f"pick one of {listed}")


def require_finite(value, input_name: str) -> float:
    """``value`` as a float when it is a finite number; NaN or infinity would turn every frame black."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnimaPoseError(input_name, f"{value!r} is not a finite number (NaN or infinity would turn every frame "
                             "black)", "enter a finite value")
    return float(value)
