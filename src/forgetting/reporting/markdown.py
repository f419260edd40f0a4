"""Markdown tables and pages, as the report, the settings page, the memory-budget page and Table 2's page write them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def table(header: list[str], rows: list[list[str]], text: int = 0, left: Iterable[int] = ()) -> list[str]:
    """A markdown table: the first column, the last ``text`` ones and those at the indices ``left`` left-aligned
    (text), the others (numbers) right."""
    lefts = {0, *range(len(header) - text, len(header)), *left}
    rule = "|" + "".join("---|" if column in lefts else "---:|" for column in range(len(header)))
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(row) + " |" for row in rows)]


def write(path: Path, lines: list[str]) -> None:
    """``lines`` as the text of ``path``, each ended by a newline."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
