"""Progress bars that keep stored notebook outputs clean.

``tqdm.auto`` without ipywidgets prints a ``TqdmWarning`` into the notebook, and a text bar
run by papermill is stored as every intermediate ``\\r`` update. :func:`progress` gives a text
bar that clears itself (``leave=False``) and is switched off when ``BBPM_PROGRESS=0``, which
``scripts/run_notebooks.sh`` sets, so the executed notebooks in the book carry no bars.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.std import tqdm

T = TypeVar("T")

#: Environment variable: ``0`` switches every bar off (the book's executed notebooks).
PROGRESS_ENV = "BBPM_PROGRESS"


def progress_enabled() -> bool:
    """False when ``$BBPM_PROGRESS`` is ``0``/``false``/``off``/``no``."""
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {"0", "false", "off", "no"}


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` text bar on stderr that disappears when done (``leave=False``); disabled
    when ``$BBPM_PROGRESS=0``. Keyword arguments go to ``tqdm`` (``desc``, ``total``, ...)."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("mininterval", 1.0)
    kwargs["disable"] = kwargs.get("disable", False) or not progress_enabled()
    return tqdm(iterable, **kwargs)
