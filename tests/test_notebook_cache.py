"""Cached notebook execution: a notebook runs again only when its inputs changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bbpm import notebook_cache

ROOT = Path(__file__).resolve().parents[1]


def make_repo(tmp_path: Path) -> Path:
    """A repository with one notebook, its params file and a one-file bbpm package."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "bbpm").mkdir()
    (tmp_path / "notebooks" / "tiny.py").write_text("# %%\nx = 1\n")
    (tmp_path / "params" / "smoke" / "tiny.yaml").write_text("x: 1\n")
    (tmp_path / "bbpm" / "core.py").write_text("A = 1\n")
    (tmp_path / "_build" / "notebooks").mkdir(parents=True)
    (tmp_path / "_build" / "notebooks" / "tiny.ipynb").write_text("{}")
    return tmp_path


def test_stamp_is_fresh_until_an_input_changes(tmp_path, monkeypatch):
    root = make_repo(tmp_path)
    params = "params/smoke/tiny.yaml"
    assert not notebook_cache.is_fresh(root, "tiny", params)  # never ran
    stamp = notebook_cache.write_stamp(root, "tiny", params, seconds=2.0)
    assert stamp["reused"] is False and stamp["runtime_seconds"] == 2.0
    assert notebook_cache.is_fresh(root, "tiny", params)

    for path, text in (
        ("notebooks/tiny.py", "# %%\nx = 2\n"),
        ("params/smoke/tiny.yaml", "x: 2\n"),
        ("bbpm/core.py", "A = 2\n"),
        ("bbpm/new_module.py", "B = 1\n"),
    ):
        target = root / path
        before = target.read_text() if target.exists() else None
        target.write_text(text)
        assert not notebook_cache.is_fresh(root, "tiny", params), path
        if before is None:
            target.unlink()
        else:
            target.write_text(before)
        assert notebook_cache.is_fresh(root, "tiny", params), path

    (root / "bbpm" / "__pycache__").mkdir()
    (root / "bbpm" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"compiled")
    assert notebook_cache.is_fresh(root, "tiny", params)  # bytecode is not source

    monkeypatch.setattr(notebook_cache, "environment_hash", lambda: "another environment")
    assert not notebook_cache.is_fresh(root, "tiny", params)


def test_other_params_file_or_missing_notebook_is_not_fresh(tmp_path):
    root = make_repo(tmp_path)
    (root / "params" / "tiny.yaml").write_text("x: 1000\n")
    notebook_cache.write_stamp(root, "tiny", "params/smoke/tiny.yaml", seconds=1)
    assert not notebook_cache.is_fresh(root, "tiny", "params/tiny.yaml")
    (root / "_build" / "notebooks" / "tiny.ipynb").unlink()
    assert not notebook_cache.is_fresh(root, "tiny", "params/smoke/tiny.yaml")


def test_environment_hash_follows_the_installed_distributions(monkeypatch):
    class Dist:
        def __init__(self, name, version):
            self.metadata = {"Name": name}
            self.version = version

    monkeypatch.setattr(
        notebook_cache.importlib.metadata, "distributions", lambda: [Dist("torch", "2.13.0")]
    )
    first = notebook_cache.environment_hash()
    monkeypatch.setattr(
        notebook_cache.importlib.metadata, "distributions", lambda: [Dist("torch", "2.14.0")]
    )
    assert notebook_cache.environment_hash() != first


def test_cli_marks_a_reused_notebook_and_keeps_when_it_ran(tmp_path):
    root = make_repo(tmp_path)
    args = ["--root", str(root)]
    assert notebook_cache.main([*args, "fresh", "tiny", "params/smoke/tiny.yaml"]) == 1
    assert (
        notebook_cache.main([*args, "stamp", "tiny", "params/smoke/tiny.yaml", "--seconds", "3.5"])
        == 0
    )
    ran = notebook_cache.read_stamp(root, "tiny")
    assert notebook_cache.main([*args, "fresh", "tiny", "params/smoke/tiny.yaml"]) == 0
    reused = notebook_cache.read_stamp(root, "tiny")
    assert reused["reused"] is True and reused["ran_at"] == ran["ran_at"]
    assert reused["commit"] == ran["commit"] and reused["runtime_seconds"] == 3.5
    assert set(notebook_cache.all_stamps(root)) == {"tiny"}
    assert notebook_cache.main([*args, "forget", "tiny"]) == 0
    assert notebook_cache.read_stamp(root, "tiny") is None


FAKE_PAPERMILL = """#!/usr/bin/env bash
# records each run and writes the output notebook: papermill IN OUT -f PARAMS ...
echo "$(basename "$1" .py)" >> "$(dirname "$0")/../../runs.txt"
echo '{}' > "$2"
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_run_notebooks_script_reruns_only_what_changed(tmp_path):
    """scripts/run_notebooks.sh with a stand-in papermill that records which notebooks ran."""
    root = make_repo(tmp_path)
    (root / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run_notebooks.sh", root / "scripts")
    shutil.copy(ROOT / "bbpm" / "notebook_cache.py", root / "bbpm")
    (root / "notebooks" / "summary.py").write_text("# %%\n")
    (root / "params" / "smoke" / "summary.yaml").write_text("seed: 0\n")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "papermill").write_text(FAKE_PAPERMILL)
    (venv_bin / "papermill").chmod(0o755)
    runs = root / "runs.txt"

    def run(**env: str) -> list[str]:
        runs.write_text("")
        done = subprocess.run(
            ["bash", "scripts/run_notebooks.sh", "smoke"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FORCE": "0", **env},
        )
        assert done.returncode == 0, done.stderr
        return runs.read_text().split()

    assert run() == ["summary", "tiny"]
    assert run() == ["summary"]  # tiny re-used; the summary reports this build
    stamp = json.loads((root / "_build" / "notebooks" / "tiny.stamp.json").read_text())
    assert stamp["reused"] is True and stamp["params_file"] == "params/smoke/tiny.yaml"
    (root / "notebooks" / "tiny.py").write_text("# %%\nx = 3\n")
    assert run() == ["summary", "tiny"]
    (root / "bbpm" / "core.py").write_text("A = 3\n")
    assert run() == ["summary", "tiny"]
    assert run(FORCE="1") == ["summary", "tiny"]
    assert run() == ["summary"]
