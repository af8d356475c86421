"""Number and table formatting shared by the notebooks."""

from __future__ import annotations

from typing import Any


def format_bytes(nbytes: float) -> str:
    """Binary units at 3 significant digits: ``65536 -> '64 KiB'``, ``1048576 -> '1 MiB'``,
    ``1081344 -> '1.03 MiB'``, ``512 -> '512 B'``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:g} B"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A MyST/GitHub markdown table; ``|`` inside cells is escaped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def show_table(header: list[str], rows: list[list[Any]]) -> None:
    """Display a markdown table in a notebook (printed as text elsewhere)."""
    text = markdown_table(header, rows)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the book extra
        print(text)
    else:
        display(Markdown(text))
