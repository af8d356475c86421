"""The notebook pipeline: `papermill notebooks/NAME.py OUT.ipynb -f PARAMS` runs a percent
.py notebook (bbpm.notebook_io), injects the parameters and stores the outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("papermill")

from bbpm import notebook_io  # noqa: E402

TINY_NOTEBOOK = textwrap.dedent(
    """\
    # %% [markdown]
    # # A tiny notebook

    # %% tags=["parameters"]
    factor = 1
    out_file = "doubled.txt"

    # %%
    from pathlib import Path

    Path(out_file).write_text(str(2 * factor))
    print("doubled:", 2 * factor)
    """
)


def run_papermill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command a user types, with this interpreter's papermill (fresh process)."""
    return subprocess.run(
        [sys.executable, "-m", "papermill", *args, "--start-timeout", "120"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_conversion_keeps_the_parameters_tag_and_names_a_kernel():
    notebook = json.loads(notebook_io.py_to_notebook(TINY_NOTEBOOK))
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    tags = [cell["metadata"].get("tags", []) for cell in notebook["cells"]]
    assert tags[1] == ["parameters"]
    assert "".join(notebook["cells"][0]["source"]).startswith("# A tiny notebook")


def test_papermill_reads_py_paths_through_the_bbpm_handler():
    from papermill.iorw import papermill_io

    handler = papermill_io.get_handler("notebooks/exp04.py")
    assert isinstance(handler, notebook_io.PyPercentHandler), (
        "the papermill.io entry point is not active: run `pip install -e .`"
    )
    assert papermill_io.get_handler("local") is handler  # papermill sets cwd through it
    assert hasattr(handler, "cwd")


def test_ipynb_paths_still_go_to_the_papermill_local_handler(tmp_path):
    from papermill.iorw import papermill_io

    path = tmp_path / "plain.ipynb"
    path.write_text(notebook_io.py_to_notebook(TINY_NOTEBOOK), encoding="utf-8")
    assert papermill_io.read(str(path)) == path.read_text(encoding="utf-8")


def test_writing_over_a_py_source_is_refused(tmp_path):
    from papermill.exceptions import PapermillException

    handler = notebook_io.install()
    with pytest.raises(PapermillException, match="ipynb output path"):
        handler.write("{}", str(tmp_path / "nb.py"))


def test_the_python3_kernel_is_this_interpreter():
    ok, message = notebook_io.check_kernel("python3")
    assert ok, message


def test_papermill_cli_runs_a_py_notebook_with_injected_parameters(tmp_path):
    (tmp_path / "nb.py").write_text(TINY_NOTEBOOK, encoding="utf-8")
    (tmp_path / "params.yaml").write_text("factor: 21\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    result = run_papermill("nb.py", "out/nb.ipynb", "-f", "params.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "doubled.txt").read_text() == "42"
    executed = json.loads((tmp_path / "out" / "nb.ipynb").read_text(encoding="utf-8"))
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert len(injected) == 1 and "factor = 21" in "".join(injected[0]["source"])
    outputs = "".join(
        "".join(o.get("text", [])) for c in executed["cells"] for o in c.get("outputs", [])
    )
    assert "doubled: 42" in outputs


def test_papermill_without_output_path_runs_and_saves_nothing(tmp_path):
    (tmp_path / "nb.py").write_text(TINY_NOTEBOOK, encoding="utf-8")
    result = run_papermill("nb.py", "-p", "factor", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "doubled.txt").read_text() == "10"  # the notebook ran
    assert '"cells"' not in result.stdout  # no notebook JSON dumped on stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doubled.txt", "nb.py"]


def test_a_failing_cell_fails_the_papermill_run(tmp_path):
    (tmp_path / "bad.py").write_text(
        "# %%\nraise RuntimeError('cell failed on purpose')\n", encoding="utf-8"
    )
    result = run_papermill("bad.py", cwd=tmp_path)
    assert result.returncode != 0
    assert "cell failed on purpose" in result.stderr + result.stdout


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
# (parameters cell vs params/*.yaml is checked in tests/test_notebooks_params.py)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_a_markdown_title(path):
    import jupytext

    first = jupytext.read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"{path.name}: the book (built with -W) needs a first markdown cell '# Title'"
    )
