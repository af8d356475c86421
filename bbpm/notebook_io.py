"""Let papermill run the percent-format ``.py`` notebooks directly.

papermill reads only ``.ipynb``. This module is loaded by papermill through the
``papermill.io`` entry point declared in ``pyproject.toml``; loading it installs a
handler for plain local paths that converts ``*.py`` (jupytext percent format) into a
notebook with a ``python3`` kernelspec, and hands every other local path to
papermill's own ``LocalHandler``. So, from the repository root::

    papermill notebooks/exp04.py                                   # run, save nothing
    papermill notebooks/exp04.py _build/notebooks/exp04.ipynb -f params/exp04.yaml

papermill's CLI itself insists on an output path when stdout is a terminal (and writes the
notebook JSON to stdout when it is a pipe). For a ``.py`` input given without an output
path, this module makes the output :data:`NO_OUTPUT` instead: the notebook runs, its
progress is shown, and nothing is saved (the notebooks write their own results). Pass
``-`` as the output path to get the JSON on stdout.

The kernel: the converted notebook names the ``python3`` kernel. jupyter_client starts
a kernelspec whose command is plain ``python`` with the interpreter running papermill
(``sys.executable``), and inside a virtual environment the environment's kernelspecs
win over user-level ones, so ``.venv/bin/papermill`` runs the notebook with the venv's
python. ``scripts/setup_env.sh`` also registers the kernel with
``python -m ipykernel install --sys-prefix --name python3``; if a user-level ``python3``
kernelspec still shadows it (e.g. ``JUPYTER_PREFER_ENV_PATH=0``), run that command or
pass ``-k <kernel>`` to papermill.

Outside papermill, :func:`py_to_notebook` converts one file, :func:`install` installs the
handler into a papermill I/O registry explicitly, and ``python -m bbpm.notebook_io
check-kernel`` says which interpreter the ``python3`` kernel would run.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings
from typing import Any

__all__ = [
    "KERNELSPEC",
    "NO_OUTPUT",
    "PyPercentHandler",
    "check_kernel",
    "install",
    "is_py_notebook",
    "py_to_notebook",
]

_log = logging.getLogger("bbpm.notebook_io")

#: Kernelspec written into converted notebooks (papermill refuses a notebook without one).
KERNELSPEC: dict[str, str] = {"name": "python3", "display_name": "Python 3", "language": "python"}

_PY_SUFFIXES = (".py",)

#: The entry point's scheme: papermill sends paths starting with it to this module's handler.
SCHEME = "bbpm-py"

#: Output "path" that saves nothing (used when a .py notebook is run without an output path).
NO_OUTPUT = f"{SCHEME}:no-output.ipynb"


def is_py_notebook(path: Any) -> bool:
    """True for a local path (str or path-like) ending in ``.py``; URLs and streams are not."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    text = os.fspath(path)
    return "://" not in text and text.lower().endswith(_PY_SUFFIXES)


def py_to_notebook(source: str, kernel_name: str = "python3") -> str:
    """Convert the text of a py:percent notebook into ``.ipynb`` JSON (nbformat 4).

    The ``# %% tags=["parameters"]`` cell keeps its tag, so papermill injects parameters
    after it. A kernelspec (``kernel_name``) is added when the source names none.
    """
    import jupytext  # lazy: only needed when a .py notebook is actually read

    notebook = jupytext.reads(source, fmt="py:percent")
    for position, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{position}"  # stable ids: the stored notebook diffs cleanly
    metadata = notebook.metadata
    if not metadata.get("kernelspec", {}).get("name"):
        metadata["kernelspec"] = {**KERNELSPEC, "name": kernel_name}
    metadata.setdefault("language_info", {"name": "python"})
    return jupytext.writes(notebook, fmt="ipynb")


class PyPercentHandler:
    """papermill I/O handler for local paths: ``*.py`` is converted with jupytext, every
    other path (and all writes, listings and ``cwd`` changes) goes to ``fallback``,
    papermill's ``LocalHandler``."""

    def __init__(self, fallback: Any | None = None) -> None:
        if fallback is None:
            from papermill.iorw import LocalHandler

            fallback = LocalHandler()
        self.fallback = fallback
        self._cwd: str | None = None

    def read(self, path: str) -> str:
        if str(path).startswith(f"{SCHEME}:"):
            raise FileNotFoundError(f"{path!r} is bbpm's no-output sink; it cannot be read")
        if not is_py_notebook(path):
            return self.fallback.read(path)
        full_path = os.path.join(self._cwd, path) if self._cwd else path
        with open(full_path, encoding="utf-8") as handle:
            return py_to_notebook(handle.read())

    def write(self, buf: str, path: str) -> Any:
        if str(path).startswith(f"{SCHEME}:"):
            return None  # NO_OUTPUT: executed, not saved
        if is_py_notebook(path):
            from papermill.exceptions import PapermillException

            raise PapermillException(
                f"refusing to write the executed notebook over the .py source {path!r}: "
                "give an .ipynb output path, e.g. _build/notebooks/NAME.ipynb"
            )
        return self.fallback.write(buf, path)

    def listdir(self, path: str) -> list[str]:
        return self.fallback.listdir(path)

    def pretty_path(self, path: str) -> str:
        if str(path).startswith(f"{SCHEME}:"):
            return "Notebook will not be saved (no output path given)"
        return self.fallback.pretty_path(path)

    def cwd(self, new_path: str | None) -> str | None:
        """Set the directory relative paths are read from / written to; returns the old one."""
        old_cwd = self._cwd
        self._cwd = new_path
        if hasattr(self.fallback, "cwd"):
            self.fallback.cwd(new_path)
        return old_cwd


def install(io: Any | None = None) -> PyPercentHandler:
    """Make ``io`` (default: ``papermill.iorw.papermill_io``) read ``.py`` notebooks.

    papermill picks the *last* handler registered under the scheme ``"local"`` for plain
    paths, so registering another one is not enough: the existing entry is replaced in
    place. Idempotent: a second call returns the handler already installed.
    """
    if io is None:
        iorw = sys.modules.get("papermill.iorw")
        if iorw is None or not hasattr(iorw, "papermill_io"):
            import papermill.iorw as iorw
        io = iorw.papermill_io
    # papermill warns that an input path does not end in .ipynb; for .py that is expected.
    warnings.filterwarnings(
        "ignore",
        message=r"The specified file \(.*\.py\) does not end in one of",
        category=UserWarning,
    )
    handlers = io._handlers
    for position, (scheme, handler) in enumerate(handlers):
        if scheme != "local":
            continue
        if isinstance(handler, PyPercentHandler):
            return handler
        wrapped = PyPercentHandler(fallback=handler)
        handlers[position] = ("local", wrapped)
        return wrapped
    wrapped = PyPercentHandler()
    io.register("local", wrapped)
    return wrapped


def _default_output_for_py(cli: Any) -> None:
    """Wrap papermill's click command so ``papermill NB.py`` (no output path, stdin not
    piped) runs with the output :data:`NO_OUTPUT` instead of stopping with "Missing
    argument 'OUTPUT_PATH'" (terminal) or printing the notebook JSON (pipe)."""
    command = getattr(cli, "papermill", None)
    callback = getattr(command, "callback", None)
    if callback is None or getattr(callback, "_bbpm_wrapped", False):
        return

    @functools.wraps(callback)
    def callback_with_default_output(*args: Any, **kwargs: Any) -> Any:
        if (
            not kwargs.get("output_path")
            and is_py_notebook(kwargs.get("notebook_path"))
            and not getattr(cli, "INPUT_PIPED", False)
        ):
            kwargs["output_path"] = NO_OUTPUT
        return callback(*args, **kwargs)

    callback_with_default_output._bbpm_wrapped = True  # type: ignore[attr-defined]
    command.callback = callback_with_default_output


class _PatchPapermillCliOnImport(importlib.abc.MetaPathFinder):
    """One-shot import hook: once ``papermill.cli`` has executed, wrap its command."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "papermill.cli":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module: Any) -> None:
            exec_module(module)
            try:
                _default_output_for_py(module)
            except Exception as error:  # never break papermill itself
                _log.warning("bbpm: could not set papermill's default output: %s", error)

        spec.loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def _watch_papermill_cli() -> None:
    cli = sys.modules.get("papermill.cli")
    if cli is not None:
        _default_output_for_py(cli)  # already imported (and complete, or we are inside it)
    elif not any(isinstance(f, _PatchPapermillCliOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchPapermillCliOnImport())


def __getattr__(name: str) -> Any:
    # The entry point names ``bbpm.notebook_io:papermill_entry_point``. papermill resolves
    # it with getattr() while papermill.iorw is still importing (before papermill.cli), so
    # the install happens then, whatever the import order of this module; the returned
    # handler is what papermill registers under the entry point's scheme "bbpm-py".
    if name == "papermill_entry_point":
        try:
            handler = install()
            _watch_papermill_cli()
            return handler
        except Exception as error:  # never break papermill itself
            _log.warning("bbpm: could not install the .py notebook handler: %s", error)
            return None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_kernel(kernel_name: str = "python3") -> tuple[bool, str]:
    """Does papermill, run by this interpreter, start ``kernel_name`` with this interpreter?

    True when the kernelspec's command is plain ``python``/``python3`` (jupyter_client
    substitutes ``sys.executable``) or a path inside this interpreter's environment.
    The message names the kernelspec found and, when it is wrong, how to fix it.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return False, (
            f"no {kernel_name!r} kernelspec; register it: "
            f"{sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
        )
    command = spec.argv[0] if spec.argv else ""
    plain = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    inside_env = os.path.abspath(command).startswith(os.path.join(os.path.abspath(sys.prefix), ""))
    where = getattr(spec, "resource_dir", "?")
    if command in plain or inside_env or os.path.abspath(command) == sys.executable:
        return (
            True,
            f"kernel {kernel_name!r} ({where}) runs {command!r}: this interpreter, {sys.executable}",
        )
    return False, (
        f"kernel {kernel_name!r} ({where}) runs {command!r}, not this interpreter ({sys.executable}); "
        f"a user-level kernelspec probably shadows the environment's. Fix: "
        f"{sys.executable} -m ipykernel install --sys-prefix --name {kernel_name} "
        "(and unset JUPYTER_PREFER_ENV_PATH), or pass papermill -k KERNEL"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bbpm.notebook_io convert NB.py > NB.ipynb`` or ``... check-kernel``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bbpm.notebook_io", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="print a .py percent notebook as .ipynb JSON")
    convert.add_argument("notebook")
    check = commands.add_parser("check-kernel", help="check which python a kernel name starts")
    check.add_argument("--name", default="python3")
    args = parser.parse_args(argv)
    if args.command == "convert":
        with open(args.notebook, encoding="utf-8") as source:
            sys.stdout.write(py_to_notebook(source.read()))
        return 0
    ok, message = check_kernel(args.name)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
