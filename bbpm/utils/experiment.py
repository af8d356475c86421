"""Bookkeeping shared by every experiment notebook.

An :class:`Experiment` knows where its outputs go (``results/<exp_id>/`` and
``figures/<exp_id>/`` under the repository root), seeds everything, logs to
``results/<exp_id>/log.txt`` and writes ``metrics.json`` / ``raw.csv`` / figures.

Headline numbers are recorded once, by name, with :meth:`Experiment.record`: the value and its
formatted text go to ``results/<exp_id>/records.json`` (read by the summary chapter and the
paper's number generator) and, inside a notebook, are glued with myst-nb so that markdown
prose shows them with ``{glue:text}`name```.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbpm.utils.logging import get_logger
from bbpm.utils.seed import set_global_seed

_RECORD_NAME = re.compile(r"[a-z][a-z0-9_]*")


def repo_root(start: str | Path | None = None) -> Path:
    """The bbpm repository root: ``$BBPM_ROOT`` if set, else the first parent of ``start``
    (default: the current directory) holding bbpm's ``pyproject.toml``, else ``start`` itself."""
    env = os.environ.get("BBPM_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and 'name = "bbpm"' in pyproject.read_text(encoding="utf-8"):
            return candidate
    return here


def to_jsonable(value: Any) -> Any:
    """Convert tensors, NumPy values, paths and non-finite floats into plain JSON values
    (NaN and inf become ``None`` so the file stays valid JSON)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    return value


def run_provenance(root: str | Path | None = None) -> dict[str, Any]:
    """Where a run's numbers come from: the git commit of ``root`` (``"unknown"`` outside a
    git checkout), whether tracked files differed from it (``dirty``) and the UTC date."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root or Path.cwd(), capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "commit": commit or "unknown",
        "dirty": bool(status),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def environment_info() -> dict[str, Any]:
    """Versions and hardware, recorded with every run."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


class Experiment:
    """Output folders, seed, logger and artifact writers for one experiment run.

    Args:
        exp_id: folder name, e.g. ``"exp01_capacity_scaling"``.
        params: every hyperparameter of the run; stored in ``metrics.json``.
        seed: seeds torch/NumPy/random when given (defaults to ``params["seed"]``).
        root: repository root (default: :func:`repo_root`).

    In a notebook, build it with :meth:`from_notebook` right after the parameters cell::

        exp = Experiment.from_notebook("exp02_ablation_K_H", "notebooks/exp02.py", globals())
        params = exp.params  # every parameter of the cell tagged "parameters", type-checked

    The parameter names and expected types come from that cell's defaults (no copy of the
    list in the notebook); a value of the wrong type (YAML reads ``1.0e6`` as a string)
    raises ``TypeError`` naming the parameter, before anything runs. Derived settings can be
    added with ``Experiment.from_notebook(..., extra={"n_total": N * n_seeds})``.
    """

    def __init__(
        self,
        exp_id: str,
        params: Mapping[str, Any],
        seed: int | None = None,
        root: str | Path | None = None,
    ) -> None:
        self.exp_id = exp_id
        self.params = dict(params)
        self.root = Path(root) if root is not None else repo_root()
        self.results_dir = self.root / "results" / exp_id
        self.figures_dir = self.root / "figures" / exp_id
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        (self.results_dir / "log.txt").write_text("", encoding="utf-8")
        # A new run starts with no records: none left over from an earlier version of the run.
        (self.results_dir / "records.json").unlink(missing_ok=True)
        self.logger = get_logger(f"bbpm.{exp_id}", self.results_dir)
        seed = self.params.get("seed") if seed is None else seed
        self.seed = set_global_seed(int(seed)) if seed is not None else None
        self.started = time.perf_counter()
        self.records: dict[str, dict[str, Any]] = {}
        self.provenance = run_provenance(self.root)
        self.logger.info(
            "run %s seed=%s params=%s", exp_id, self.seed, json.dumps(to_jsonable(self.params))
        )

    @classmethod
    def from_notebook(
        cls,
        exp_id: str,
        notebook: str | Path,
        namespace: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
        seed: int | None = None,
        root: str | Path | None = None,
    ) -> Experiment:
        """An experiment whose ``params`` are the parameters of ``notebook``'s parameters
        cell (a path relative to the repository root, e.g. ``"notebooks/exp02.py"``), with the
        values ``namespace`` holds (pass ``globals()``), each checked against its default's
        type by :func:`bbpm.utils.parameters.notebook_parameters` (``TypeError`` naming the
        parameter); ``extra`` adds derived settings to the stored params."""
        from bbpm.utils.parameters import notebook_parameters

        params = notebook_parameters(notebook, namespace)
        return cls(exp_id, {**params, **dict(extra or {})}, seed=seed, root=root)

    def save_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Write ``results/<exp_id>/metrics.json`` with the hyperparameters, the environment,
        the total runtime and ``metrics``. Returns the path."""
        payload = {
            "experiment": self.exp_id,
            "hyperparameters": self.params,
            "seed": self.seed,
            "environment": environment_info(),
            "provenance": self.provenance,
            "runtime_seconds": time.perf_counter() - self.started,
            **dict(metrics),
            "records": self.records,
        }
        path = self.results_dir / "metrics.json"
        path.write_text(
            json.dumps(to_jsonable(payload), indent=2, allow_nan=False), encoding="utf-8"
        )
        self.logger.info(
            "wrote %s", path.relative_to(self.root) if path.is_relative_to(self.root) else path
        )
        return path

    def record(
        self, name: str, value: Any, fmt: str = "", description: str = "", glue: bool = True
    ) -> str:
        """Record one headline number (or short verdict) under ``name`` and return its text.

        ``name`` is lower-case ``[a-z0-9_]`` starting with a letter and unique within the
        experiment; ``fmt`` is a format spec applied to ``value`` (``".3f"``, ``",d"``,
        ``".1%"``; empty: ``str(value)``). The record is written to
        ``results/<exp_id>/records.json`` at once, and glued (myst-nb, not displayed) when
        ``glue`` is true and myst-nb is importable.
        """
        if not isinstance(name, str) or not _RECORD_NAME.fullmatch(name):
            raise ValueError(
                f"record name must match {_RECORD_NAME.pattern} (lower-case letters, digits and "
                f"underscores, starting with a letter); got {name!r}"
            )
        plain = to_jsonable(value)
        if isinstance(plain, float | int) and not isinstance(plain, bool) and fmt:
            text = format(plain, fmt)
        elif plain is None:
            text = "n/a"
        else:
            text = format(plain, fmt) if fmt else str(plain)
        self.records[name] = {"value": plain, "text": text, "description": description}
        self._write_records()
        if glue:
            try:
                from myst_nb import glue as _glue
            except ImportError:  # pragma: no cover - myst-nb comes with the book extra
                pass
            else:
                _glue(name, text, display=False)
        return text

    def _write_records(self) -> Path:
        path = self.results_dir / "records.json"
        payload = {"experiment": self.exp_id, "run": self.provenance, "records": self.records}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps(to_jsonable(payload), indent=2, allow_nan=False), encoding="utf-8"
        )
        os.replace(tmp, path)
        return path

    def save_raw(self, rows: Iterable[Mapping[str, Any]], name: str = "raw.csv") -> Path:
        """Write a list of flat dicts as CSV (columns: union of keys, in first-seen order)."""
        rows = [to_jsonable(dict(r)) for r in rows]
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        path = self.results_dir / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def save_figure(self, fig: Any, name: str, dpi: int = 150, show: bool = True) -> Path:
        """Save a matplotlib figure to ``figures/<exp_id>/<name>`` (PNG) and record where it
        comes from in ``results/<exp_id>/figures.json``; in a notebook (``show``) display it
        with its provenance line (notebook, params file, commit) under it, and close it."""
        from bbpm.utils import provenance

        path = self.figures_dir / name
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        if not hasattr(self, "_provenance"):
            notebook = provenance.notebook_path(self.root, self.exp_id)
            self._provenance = (
                notebook,
                provenance.params_path(self.root, notebook, self.params),
                provenance.git_commit(self.root),
            )
        figure = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else name
        record = provenance.figure_record(figure, *self._provenance)
        provenance.add_figure_record(self.results_dir, record)
        self.logger.info("wrote %s", figure)
        if show and provenance.in_notebook():
            provenance.show_with_provenance(fig, record)
        return path

    def save_latex_table(
        self, name: str, header: list[str], rows: Iterable[Iterable[Any]], caption: str = ""
    ) -> Path:
        """Write a booktabs LaTeX table to ``results/<exp_id>/<name>`` (``python -m bbpm.paper
        generate`` copies it into ``paper/icml2026/generated/tables/``). Floats below 10 get 4
        decimals, larger ones none."""

        def cell(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4f}" if abs(value) < 10 else f"{value:,.0f}"
            return str(value).replace("_", r"\_").replace("%", r"\%")

        lines = [
            r"\begin{table}[t]\centering\small",
            r"\begin{tabular}{" + "l" * len(header) + "}",
            r"\toprule",
            " & ".join(cell(h) for h in header) + r" \\",
            r"\midrule",
            *(" & ".join(cell(v) for v in row) + r" \\" for row in rows),
            r"\bottomrule",
            r"\end{tabular}",
        ]
        if caption:
            lines.append(r"\caption{" + cell(caption) + "}")
        lines.append(r"\end{table}")
        path = self.results_dir / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def load_metrics(self) -> dict[str, Any]:
        """Read back this run's ``metrics.json`` (figures are drawn from it)."""
        return json.loads((self.results_dir / "metrics.json").read_text(encoding="utf-8"))
