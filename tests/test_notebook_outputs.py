"""What the book shows of each executed notebook is clean: no errors, warnings, log lines,
timestamps, absolute paths or stored progress-bar updates in the cell outputs.

Marked ``book``: it reads ``_build/notebooks/*.ipynb`` (written by scripts/run_notebooks.sh), so
the default pytest run deselects it and ``scripts/build_book.sh`` runs it after the build.
``BBPM_NOTEBOOK_DIR`` points it at another folder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = Path(os.environ.get("BBPM_NOTEBOOK_DIR", ROOT / "_build" / "notebooks"))

#: (what, pattern) pairs; a match in any text output of any cell is a failure.
PROBLEMS: list[tuple[str, re.Pattern[str]]] = [
    ("a warning", re.compile(r"\b\w*Warning\b|\bwarnings\.warn\b")),
    ("a log line", re.compile(r"\b(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b [\w.]+: ")),
    ("a timestamp", re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\b\d{2}:\d{2}:\d{2}\b")),
    (
        "an absolute path",
        re.compile(r"(?<![\w.:/])/(?:home|tmp|root|usr|work|Users|var|opt|mnt|srv)/|[A-Z]:\\\\"),
    ),
    ("a progress bar", re.compile(r"\r|\d+it/s\]|\|\s*\d+/\d+ \[")),
]


def output_texts(notebook: dict) -> list[tuple[int, str, str]]:
    """(cell index, output kind, text) for every text output of every code cell."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            kind = output.get("output_type", "")
            if kind == "stream":
                found.append((index, f"stream {output.get('name')}", _text(output.get("text"))))
            elif kind == "error":
                found.append((index, "error", f"{output.get('ename')}: {output.get('evalue')}"))
            else:
                for mime, data in output.get("data", {}).items():
                    if mime.startswith("text/"):
                        found.append((index, mime, _text(data)))
    return found


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


#: The summary chapter's job is to say when each notebook ran: it may show timestamps.
TIMESTAMPS_SHOWN = {"summary"}


def problems_in(notebook: dict, root: str = str(ROOT), timestamps: bool = False) -> list[str]:
    """Every problem in the notebook's outputs (``timestamps``: allowed)."""
    problems = []
    for index, kind, text in output_texts(notebook):
        where = f"cell {index} ({kind})"
        if kind == "error":
            problems.append(f"{where}: {text}")
            continue
        if kind == "stream stderr" and text.strip():
            problems.append(f"{where}: output on stderr: {text.strip()[:120]!r}")
        if root and root in text:
            problems.append(f"{where}: the repository's absolute path")
        for what, pattern in PROBLEMS:
            if timestamps and what == "a timestamp":
                continue
            match = pattern.search(text)
            if match:
                start = max(0, match.start() - 50)
                problems.append(f"{where}: {what}: {text[start : match.end() + 50]!r}")
    return problems


def executed_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb")) if NOTEBOOKS.is_dir() else []


@pytest.fixture(params=executed_notebooks() or [None], ids=lambda p: p and p.stem)
def executed(request) -> tuple[Path, dict]:
    """(path, parsed notebook) of each executed notebook; skips when there is none."""
    path = request.param
    if path is None:
        pytest.skip(f"no executed notebooks in {NOTEBOOKS} (run scripts/run_notebooks.sh)")
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.book
def test_executed_notebook_outputs_are_clean(executed):
    path, notebook = executed
    problems = problems_in(notebook, timestamps=path.stem in TIMESTAMPS_SHOWN)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


GLUE_REFERENCE = re.compile(r"\{glue(?::\w+)?\}`([A-Za-z_][\w]*)")


def missing_glue(notebook: dict) -> set[str]:
    """Names that markdown cells show with {glue:...}`name` but no code cell glued."""
    used, glued = set(), set()
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            used.update(GLUE_REFERENCE.findall(_text(cell.get("source"))))
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                glued.add(name)
    return used - glued


@pytest.mark.book
def test_every_glued_name_in_the_prose_was_recorded(executed):
    path, notebook = executed
    assert not missing_glue(notebook), f"{path.name}: prose shows names no cell glued"


def figures_without_provenance(notebook: dict) -> list[int]:
    """Cells with an image output not followed, in the same cell, by the provenance line that
    Experiment.save_figure displays (a figure shown by plt.show() or drawn half-way)."""
    missing = []
    for index, cell in enumerate(notebook.get("cells", [])):
        pending = False
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                pending = True
            elif pending and "bbpm-provenance" in _text(data.get("text/html", "")):
                pending = False
        if pending:
            missing.append(index)
    return missing


@pytest.mark.book
def test_every_figure_has_its_provenance_line(executed):
    path, notebook = executed
    cells = figures_without_provenance(notebook)
    assert not cells, f"{path.name}: figures without a provenance line in cells {cells}"


def code_cell(*outputs: dict) -> dict:
    return {"cell_type": "code", "source": "", "outputs": list(outputs)}


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_the_scan_finds_each_kind_of_problem_and_passes_clean_output():
    clean = {"cells": [code_cell(stream("capacity 1,234 items at 90% accuracy\n"))]}
    assert problems_in(clean) == []
    dirty = [
        stream("/x.py:3: UserWarning: deprecated\n", name="stderr"),
        stream("12:01:02 INFO bbpm.exp01: run exp01\n"),
        stream("wrote /home/someone/bbpm/figures/a.png\n"),
        stream("items:  40%|####      | 2/5 [00:01<00:01]\r"),
        stream("finished 2026-12-03 13:40\n"),
        {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
        {"output_type": "execute_result", "data": {"text/plain": "TqdmWarning: IProgress"}},
    ]
    for output in dirty:
        assert problems_in({"cells": [code_cell(output)]}), output
    assert problems_in({"cells": [code_cell(stream("see /srv/repo/x\n"))]}, root="/srv/repo")
    stamp = {"cells": [code_cell(stream("ran 2026-12-03 13:40 UTC\n"))]}
    assert problems_in(stamp) and not problems_in(stamp, timestamps=True)


def test_missing_glue_names_the_prose_references_without_a_value():
    glued = code_cell(
        {"output_type": "display_data", "data": {}, "metadata": {"scrapbook": {"name": "a"}}}
    )
    prose = {"cell_type": "markdown", "source": "x {glue:text}`a` and {glue:text}`b:.2f`"}
    assert missing_glue({"cells": [glued, prose]}) == {"b"}


def test_a_figure_needs_the_provenance_line_after_it():
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR"}}
    line = {
        "output_type": "display_data",
        "data": {"text/html": '<p class="bbpm-provenance">x</p>'},
    }
    assert figures_without_provenance({"cells": [code_cell(image, line)]}) == []
    assert figures_without_provenance({"cells": [code_cell(line, image)]}) == [0]
    assert figures_without_provenance({"cells": [code_cell(image), code_cell(line)]}) == [0]
