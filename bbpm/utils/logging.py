"""A small structured logger writing to ``results/<exp>/log.txt`` (and, on request, the console)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(
    name: str = "bbpm",
    log_dir: str | Path | None = None,
    level: int = logging.INFO,
    console: bool | None = None,
) -> logging.Logger:
    """Return a logger that appends to ``log_dir/log.txt`` when ``log_dir`` is given and prints
    to stdout when ``console`` is true. ``console=None`` prints only when there is no log file,
    so an experiment's log lines (timestamps, paths) stay out of the notebook's outputs.
    Calling it again with the same arguments adds no duplicate handlers."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt="%H:%M:%S")
    if console is None:
        console = log_dir is None
    if console and not any(getattr(h, "_bbpm_console", False) for h in logger.handlers):
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(formatter)
        stream._bbpm_console = True  # type: ignore[attr-defined]
        logger.addHandler(stream)
    if log_dir is not None:
        path = Path(log_dir).resolve() / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
            file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
    return logger
