"""Cached notebook execution: re-run a notebook only when one of its inputs changed.

A notebook's inputs are its source (``notebooks/NAME.py``), its parameters file, the source of
the ``bbpm`` package and the installed environment (every distribution's name and version, the
content of ``pip freeze``). After a successful run, ``scripts/run_notebooks.sh`` writes a stamp,
``_build/notebooks/NAME.stamp.json``, with their hashes, when the notebook ran, on which commit
and for how long. The next run re-uses the executed notebook when the stamp still matches (and
marks the stamp ``reused``); ``FORCE=1`` re-runs everything. The summary chapter shows the
stamps.

This module imports nothing from ``bbpm`` (importing torch costs seconds per call), so the
script runs it by path::

    python bbpm/notebook_cache.py fresh NAME PARAMS     # exit 0: up to date (stamp marked reused)
    python bbpm/notebook_cache.py forget NAME           # drop the stamp before a run
    python bbpm/notebook_cache.py stamp NAME PARAMS --seconds S
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: File types under ``bbpm/`` that count as package source.
SOURCE_SUFFIXES = (".py", ".c", ".h", ".cu", ".yaml", ".yml", ".json", ".toml")
#: Where the executed notebooks and their stamps live, relative to the repository root.
NOTEBOOK_DIR = Path("_build") / "notebooks"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_hash(package_dir: Path) -> str:
    """Hash of every source file under ``package_dir`` (relative path and content)."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in package_dir.rglob("*")
        if p.is_file() and p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def environment_hash() -> str:
    """Hash of the installed distributions (``name==version``, sorted, as ``pip freeze``)."""
    names = sorted(
        {
            f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
            for dist in importlib.metadata.distributions()
        }
    )
    names.append(f"python=={sys.version.split()[0]}")
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def inputs(root: Path, name: str, params: str | Path) -> dict[str, str]:
    """The hashes that decide whether notebook ``name`` must run again."""
    params_path = Path(params)
    return {
        "notebook": sha256_file(root / "notebooks" / f"{name}.py"),
        "params_file": params_path.as_posix(),
        "params": sha256_file(root / params_path),
        "bbpm": package_hash(root / "bbpm"),
        "environment": environment_hash(),
    }


def commit(root: Path) -> str:
    """``git describe --always --dirty`` of ``root`` (``unknown`` outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def stamp_path(root: Path, name: str) -> Path:
    return root / NOTEBOOK_DIR / f"{name}.stamp.json"


def read_stamp(root: Path, name: str) -> dict[str, Any] | None:
    path = stamp_path(root, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def is_fresh(root: Path, name: str, params: str | Path) -> bool:
    """True when the executed notebook exists and its stamp matches the current inputs."""
    stamp = read_stamp(root, name)
    executed = root / NOTEBOOK_DIR / f"{name}.ipynb"
    return bool(stamp) and executed.is_file() and stamp.get("inputs") == inputs(root, name, params)


def mark_reused(root: Path, name: str) -> dict[str, Any]:
    """Record that this build shows the stored notebook without running it."""
    stamp = read_stamp(root, name) or {}
    stamp["reused"] = True
    stamp["checked_at"] = _now()
    _write(stamp_path(root, name), stamp)
    return stamp


def write_stamp(root: Path, name: str, params: str | Path, seconds: float) -> dict[str, Any]:
    """Record a successful run of ``name`` with ``params`` that took ``seconds``."""
    now = _now()
    stamp = {
        "notebook": f"notebooks/{name}.py",
        "params_file": Path(params).as_posix(),
        "ran_at": now,
        "checked_at": now,
        "commit": commit(root),
        "runtime_seconds": round(float(seconds), 1),
        "reused": False,
        "inputs": inputs(root, name, params),
    }
    path = stamp_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, stamp)
    return stamp


def forget(root: Path, name: str) -> None:
    stamp_path(root, name).unlink(missing_ok=True)


def all_stamps(root: Path) -> dict[str, dict[str, Any]]:
    """Every stamp in ``_build/notebooks``, by notebook name."""
    folder = root / NOTEBOOK_DIR
    stamps = {}
    for path in sorted(folder.glob("*.stamp.json")):
        stamp = read_stamp(root, path.name.removesuffix(".stamp.json"))
        if stamp is not None:
            stamps[path.name.removesuffix(".stamp.json")] = stamp
    return stamps


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bbpm/notebook_cache.py", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)
    fresh = sub.add_parser("fresh", help="exit 0 (and mark reused) when NAME is up to date")
    fresh.add_argument("name")
    fresh.add_argument("params")
    gone = sub.add_parser("forget", help="remove NAME's stamp")
    gone.add_argument("name")
    done = sub.add_parser("stamp", help="record a successful run of NAME")
    done.add_argument("name")
    done.add_argument("params")
    done.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if args.command == "fresh":
        if not is_fresh(root, args.name, args.params):
            return 1
        mark_reused(root, args.name)
        return 0
    if args.command == "forget":
        forget(root, args.name)
        return 0
    write_stamp(root, args.name, args.params, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
