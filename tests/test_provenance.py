"""Every saved figure records the notebook, params file and commit that made it."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bbpm.utils import Experiment, provenance  # noqa: E402


def make_repo(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "notebooks" / "exp09.py").write_text("# %%\n")
    (tmp_path / "params" / "exp09.yaml").write_text("N: 1000\nseed: 0\n")
    (tmp_path / "params" / "smoke" / "exp09.yaml").write_text("N: 10\n")
    return tmp_path


def test_params_file_is_the_one_whose_values_the_run_used(tmp_path, monkeypatch):
    root = make_repo(tmp_path)
    monkeypatch.delenv(provenance.PARAMS_ENV, raising=False)
    monkeypatch.delenv(provenance.NOTEBOOK_ENV, raising=False)
    notebook = provenance.notebook_path(root, "exp09_read_rules")
    assert notebook == "notebooks/exp09.py"
    assert provenance.params_path(root, notebook, {"N": 1000, "seed": 0}) == "params/exp09.yaml"
    assert provenance.params_path(root, notebook, {"N": 10, "seed": 3}) == "params/smoke/exp09.yaml"
    assert provenance.params_path(root, notebook, {"N": 11}) is None
    monkeypatch.setenv(provenance.PARAMS_ENV, "params/other.yaml")
    assert provenance.params_path(root, notebook, {"N": 11}) == "params/other.yaml"


def test_save_figure_records_provenance_and_the_command(tmp_path, monkeypatch):
    root = make_repo(tmp_path)
    monkeypatch.delenv(provenance.PARAMS_ENV, raising=False)
    monkeypatch.delenv(provenance.NOTEBOOK_ENV, raising=False)
    exp = Experiment("exp09_read_rules", {"N": 10, "seed": 0}, root=root)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    exp.save_figure(fig, "a.png")
    exp.save_figure(fig, "a.png")  # saved again: one record
    exp.save_figure(fig, "b.png")
    plt.close(fig)
    figures = json.loads((root / "results" / "exp09_read_rules" / "figures.json").read_text())
    assert [f["figure"] for f in figures] == [
        "figures/exp09_read_rules/a.png",
        "figures/exp09_read_rules/b.png",
    ]
    first = figures[0]
    assert first["notebook"] == "notebooks/exp09.py"
    assert first["params_file"] == "params/smoke/exp09.yaml"
    assert first["commit"] == "unknown"  # tmp_path is not a git checkout
    assert first["command"] == (
        "papermill notebooks/exp09.py _build/notebooks/exp09.ipynb -f params/smoke/exp09.yaml"
    )


def test_provenance_line_links_notebook_params_and_executed_notebook():
    line = provenance.provenance_html(
        provenance.figure_record(
            "figures/exp02_x/a.png", "notebooks/exp02.py", "params/exp02.yaml", "abc123"
        )
    )
    assert '<a href="../source/notebooks/exp02.py">notebooks/exp02.py</a>' in line
    assert '<a href="../source/params/exp02.yaml">params/exp02.yaml</a>' in line
    assert '<a href="../_sources/notebooks/exp02.ipynb">' in line
    assert "<code>abc123</code>" in line and "<code>figures/exp02_x/a.png</code>" in line
    defaults = provenance.provenance_html(
        provenance.figure_record("f.png", "notebooks/exp02.py", None, "abc")
    )
    assert "default parameters" in defaults and "../source/params" not in defaults
