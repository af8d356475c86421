"""Where a figure comes from: the notebook, the parameters file and the commit that made it.

:meth:`bbpm.utils.Experiment.save_figure` records each saved figure in
``results/<exp_id>/figures.json`` (read by the summary chapter, which lists the command that
re-makes each figure) and, inside a notebook, shows the figure with a provenance line under it.
The line's links are relative to the chapter's page in the book (``notebooks/NAME.html``):
``book/_extra/source`` puts the notebooks' sources and the params files at ``source/``, and
Sphinx keeps the executed notebook at ``_sources/notebooks/NAME.ipynb``.

``scripts/run_notebooks.sh`` tells the kernel which notebook and params file it runs
(``BBPM_NOTEBOOK``, ``BBPM_PARAMS_FILE``); without them the params file is found by comparing
the run's parameters with ``params/NAME.yaml`` and ``params/smoke/NAME.yaml``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bbpm.notebook_cache import commit as git_commit  # noqa: F401 (re-exported)

NOTEBOOK_ENV = "BBPM_NOTEBOOK"
PARAMS_ENV = "BBPM_PARAMS_FILE"


def notebook_path(root: Path, exp_id: str) -> str | None:
    """``notebooks/NAME.py`` of the running notebook: ``$BBPM_NOTEBOOK``, else the notebook
    named by the experiment id (``exp02_ablation_K_H`` -> ``notebooks/exp02.py``)."""
    if os.environ.get(NOTEBOOK_ENV):
        return os.environ[NOTEBOOK_ENV]
    for stem in (exp_id, exp_id.split("_")[0]):
        if (root / "notebooks" / f"{stem}.py").is_file():
            return f"notebooks/{stem}.py"
    return None


def params_path(root: Path, notebook: str | None, params: Mapping[str, Any]) -> str | None:
    """The params file of this run: ``$BBPM_PARAMS_FILE``, else the one of
    ``params/NAME.yaml``/``params/smoke/NAME.yaml`` whose every value the run used."""
    if os.environ.get(PARAMS_ENV):
        return os.environ[PARAMS_ENV]
    if notebook is None:
        return None
    stem = Path(notebook).stem
    for candidate in (f"params/{stem}.yaml", f"params/smoke/{stem}.yaml"):
        path = root / candidate
        if path.is_file():
            wanted = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if all(params.get(k) == v for k, v in wanted.items()):
                return candidate
    return None


def reproduce_command(notebook: str | None, params_file: str | None) -> str | None:
    """The command that runs the notebook again with the same parameters."""
    if notebook is None:
        return None
    stem = Path(notebook).stem
    command = f"papermill {notebook} _build/notebooks/{stem}.ipynb"
    return command + (f" -f {params_file}" if params_file else "")


def figure_record(
    figure: str, notebook: str | None, params_file: str | None, commit: str
) -> dict[str, Any]:
    return {
        "figure": figure,
        "notebook": notebook,
        "params_file": params_file,
        "commit": commit,
        "command": reproduce_command(notebook, params_file),
    }


def add_figure_record(results_dir: Path, record: Mapping[str, Any]) -> Path:
    """Add (or replace, by figure path) one figure in ``results_dir/figures.json``."""
    path = results_dir / "figures.json"
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        figures = []
    figures = [f for f in figures if f.get("figure") != record["figure"]] + [dict(record)]
    path.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return path


def provenance_html(record: Mapping[str, Any]) -> str:
    """One line under a figure in the book: figure file, notebook, params file (linked),
    commit, and the executed notebook."""
    esc = html.escape
    parts = [f"Figure <code>{esc(record['figure'])}</code>"]
    notebook = record.get("notebook")
    if notebook:
        parts.append(f'made by <a href="../source/{esc(notebook)}">{esc(notebook)}</a>')
        params_file = record.get("params_file")
        parts.append(
            f'with <a href="../source/{esc(params_file)}">{esc(params_file)}</a>'
            if params_file
            else "with the notebook's default parameters"
        )
    parts.append(f"at commit <code>{esc(record['commit'])}</code>")
    line = " ".join(parts)
    if notebook:
        stem = esc(Path(notebook).stem)
        line += f' · <a href="../_sources/notebooks/{stem}.ipynb">executed notebook</a>'
    return f'<p class="bbpm-provenance" style="font-size: 0.85em; color: #555;">{line}</p>'


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a figure and HTML can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show_with_provenance(fig: Any, record: Mapping[str, Any]) -> None:
    """Display ``fig`` and its provenance line in the notebook, then close it (so a following
    ``plt.show()`` does not show it twice)."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    display(fig)
    display(HTML(provenance_html(record)))
    plt.close(fig)
