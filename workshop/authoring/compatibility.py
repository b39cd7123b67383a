#!/usr/bin/env python
"""Writes the internals table of ``docs/compatibility.md`` from ``animapose/comfy_seam/internals.py``.

The page's prose is written by hand; the table between its ``internals`` markers is generated, so the page lists
exactly what the seam names (tests/unit/test_compatibility.py checks both against the code). Run after changing
the table.
"""

from __future__ import annotations

import argparse
import sys

from ...animapose.comfy_seam import internals
from ..env import REPO

PAGE = REPO / "docs" / "compatibility.md"
BEGIN, END = "<!-- internals:begin (generated from animapose/comfy_seam/internals.py) -->", "<!-- internals:end -->"


def with_table(page: str) -> str:
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{internals.markdown_table()}{END}{tail}"


def main() -> int:
    argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0]).parse_args()
    PAGE.write_text(with_table(PAGE.read_text()))
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
