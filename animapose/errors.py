"""One exception type for every user-facing problem, so each message names the input and the fix.

Runtime code knows the input it was handed but not which node called it; the node layer adds its display name
(``nodes/common.py``), giving messages like::

    AnimaPose Apply Motion Model: input 'motion_model': SDXL motion module on an SD1.5 model. Fix: load an SD1.5
    motion module (mm_sd_v15_v2, v3_sd15_mm, ...) or switch the checkpoint to SDXL.
"""

from __future__ import annotations


class AnimaPoseError(ValueError):
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
