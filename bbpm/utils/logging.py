"""A small structured logger writing to the console and to ``results/<exp>/log.txt``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(
    name: str = "bbpm", log_dir: str | Path | None = None, level: int = logging.INFO
) -> logging.Logger:
    """Return a logger that prints to stdout and, when ``log_dir`` is given, appends to
    ``log_dir/log.txt``. Calling it again with the same arguments adds no duplicate handlers."""
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt="%H:%M:%S")
    if not any(getattr(h, "_bbpm_console", False) for h in logger.handlers):
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(formatter)
        console._bbpm_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
    if log_dir is not None:
        path = Path(log_dir).resolve() / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
            file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
    return logger
