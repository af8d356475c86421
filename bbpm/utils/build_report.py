"""What the summary chapter reads: every experiment's records and figures, every notebook's
run stamp, as rows for tables.

- ``results/<exp_id>/records.json``: the headline numbers (:meth:`Experiment.record`);
- ``results/<exp_id>/figures.json``: the figures and where they come from
  (:meth:`Experiment.save_figure`);
- ``_build/notebooks/<name>.stamp.json``: when each notebook ran, on which commit, for how
  long, and whether this build re-used it (``bbpm/notebook_cache.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bbpm.notebook_cache import all_stamps
from bbpm.utils.formatting import markdown_table


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_records(results: Path, skip: tuple[str, ...] = ("summary",)) -> dict[str, dict]:
    """``{exp_id: {name: {"value", "text", "description"}}}`` for every experiment folder."""
    found = {}
    for path in sorted(results.glob("*/records.json")):
        data = _read_json(path)
        if path.parent.name not in skip and isinstance(data, dict):
            found[path.parent.name] = data.get("records", {})
    return found


def load_figures(results: Path, skip: tuple[str, ...] = ("summary",)) -> list[dict]:
    """Every figure record of every experiment (figure, notebook, params file, commit,
    command), ordered by experiment."""
    figures = []
    for path in sorted(results.glob("*/figures.json")):
        data = _read_json(path)
        if path.parent.name not in skip and isinstance(data, list):
            figures.extend(data)
    return figures


def run_rows(root: Path, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One row per notebook stamp: notebook, params file, mode, ran at, commit, seconds,
    re-used by this build."""
    rows = []
    for name, stamp in all_stamps(root).items():
        if name in skip:
            continue
        params_file = stamp.get("params_file") or ""
        rows.append(
            {
                "notebook": name,
                "params_file": params_file,
                "mode": "smoke" if "/smoke/" in params_file else "full",
                "ran_at": stamp.get("ran_at", "n/a"),
                "commit": stamp.get("commit", "unknown"),
                "seconds": stamp.get("runtime_seconds"),
                "reused": bool(stamp.get("reused")),
            }
        )
    return rows


def figure_commands_markdown(figures: list[dict]) -> str:
    """The reproduce page's table: each figure and the command that makes it again."""
    if not figures:
        return "No figure was recorded in this build.\n"
    rows = [
        [f"`{f['figure']}`", f"`{f['command']}`" if f.get("command") else "n/a"] for f in figures
    ]
    return markdown_table(["figure", "command (from the repository root)"], rows)
