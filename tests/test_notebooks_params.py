"""Every notebook's parameters cell agrees with its params files.

For each ``notebooks/<stem>.py`` (py:percent, its parameters cell read by
:func:`bbpm.utils.parameters.parameters_defaults`, the parser notebooks use at run time):

* there is exactly one code cell tagged ``parameters``, holding plain ``name = value``
  assignments of constants;
* ``params/<stem>.yaml`` exists and holds exactly those names with the same values and types
  (it is the full-run setting papermill injects, so it must equal the defaults);
* ``params/smoke/<stem>.yaml`` exists and only sets names the parameters cell defines, with
  values of a compatible type (an int may stand for a float).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbpm.utils.parameters import parameters_defaults

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def kind(value: Any) -> str:
    """Type category compared between defaults and yaml values (bool is not an int here)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def same_value(a: Any, b: Any) -> bool:
    """Equal values of equal type categories, recursively (tuples compare as lists)."""
    if kind(a) != kind(b):
        return False
    if kind(a) == "list":
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def compatible(default: Any, override: Any) -> bool:
    """Can ``override`` (smoke yaml) stand in for ``default``? Same category, an int for a
    float, or None on either side."""
    if default is None or override is None:
        return True
    return kind(default) == kind(override) or (kind(default) == "float" and kind(override) == "int")


def load_yaml(path: Path) -> dict[str, Any]:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(
            f"{path}: expected a mapping of parameter names to values, got {type(content).__name__}"
        )
    return content


def params_problems(notebook: Path, root: Path) -> list[str]:
    """Every disagreement between ``notebook``'s parameters cell and its two params files
    (empty when all is well)."""
    stem = notebook.stem
    full_path = root / "params" / f"{stem}.yaml"
    smoke_path = root / "params" / "smoke" / f"{stem}.yaml"
    defaults = parameters_defaults(notebook)
    problems = []
    for path in (full_path, smoke_path):
        if not path.is_file():
            problems.append(
                f"missing {path.relative_to(root)}: every notebook needs params/{stem}.yaml and params/smoke/{stem}.yaml"
            )
    if full_path.is_file():
        full = load_yaml(full_path)
        for name in sorted(defaults.keys() - full.keys()):
            problems.append(
                f"params/{stem}.yaml lacks parameter {name!r} (default {defaults[name]!r})"
            )
        for name in sorted(full.keys() - defaults.keys()):
            problems.append(
                f"params/{stem}.yaml sets {name!r}, which the parameters cell does not define"
            )
        for name in sorted(defaults.keys() & full.keys()):
            if not same_value(defaults[name], full[name]):
                problems.append(
                    f"{name}: notebook default {defaults[name]!r} ({kind(defaults[name])}) != "
                    f"params/{stem}.yaml {full[name]!r} ({kind(full[name])})"
                )
    if smoke_path.is_file():
        smoke = load_yaml(smoke_path)
        for name in sorted(smoke.keys() - defaults.keys()):
            problems.append(
                f"params/smoke/{stem}.yaml sets {name!r}, which the parameters cell does not define"
            )
        for name in sorted(smoke.keys() & defaults.keys()):
            if not compatible(defaults[name], smoke[name]):
                problems.append(
                    f"params/smoke/{stem}.yaml: {name} = {smoke[name]!r} ({kind(smoke[name])}) does not fit the "
                    f"default {defaults[name]!r} ({kind(defaults[name])})"
                )
    return problems


def test_the_repository_has_notebooks():
    assert NOTEBOOKS, f"no notebooks/*.py found under {ROOT}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_cell_matches_params_files(notebook: Path):
    problems = params_problems(notebook, ROOT)
    assert not problems, f"{notebook.name}:\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------- the checker itself


def write_project(tmp_path: Path, cell: str, full: str | None, smoke: str | None) -> Path:
    notebook = tmp_path / "notebooks" / "nb.py"
    notebook.parent.mkdir()
    source = (
        '# %% [markdown]\n# # nb: test\n\n# %% tags=["parameters"]\n'
        + textwrap.dedent(cell)
        + "\n# %%\nprint(1)\n"
    )
    notebook.write_text(source, encoding="utf-8")
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    if full is not None:
        (tmp_path / "params" / "nb.yaml").write_text(textwrap.dedent(full), encoding="utf-8")
    if smoke is not None:
        (tmp_path / "params" / "smoke" / "nb.yaml").write_text(
            textwrap.dedent(smoke), encoding="utf-8"
        )
    return notebook


CELL = """\
D = 2**20
rate = 0.5
sizes = [1, 2]
name = "x"
flag = True
"""
FULL = "D: 1048576\nrate: 0.5\nsizes: [1, 2]\nname: x\nflag: true\n"


def test_checker_accepts_matching_files(tmp_path):
    notebook = write_project(tmp_path, CELL, FULL, "D: 1024\nrate: 1\n")
    assert parameters_defaults(notebook) == {
        "D": 1048576,
        "rate": 0.5,
        "sizes": [1, 2],
        "name": "x",
        "flag": True,
    }
    assert params_problems(notebook, tmp_path) == []


def test_checker_reports_a_changed_default(tmp_path):
    notebook = write_project(tmp_path, CELL, FULL.replace("rate: 0.5", "rate: 0.25"), "")
    problems = params_problems(notebook, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("rate:")


def test_checker_reports_type_mismatches(tmp_path):
    # YAML 1.1 reads 1e-3 as a string and `1` as an int: both would change what papermill injects.
    notebook = write_project(
        tmp_path, CELL, FULL.replace("rate: 0.5", "rate: 1e-3").replace("flag: true", "flag: 1"), ""
    )
    problems = params_problems(notebook, tmp_path)
    assert sorted(p.split(":")[0] for p in problems) == ["flag", "rate"]


def test_checker_reports_missing_and_extra_keys(tmp_path):
    notebook = write_project(
        tmp_path, CELL, FULL.replace("name: x\n", "") + "extra: 3\n", "bogus: 1\nsizes: 4\n"
    )
    problems = params_problems(notebook, tmp_path)
    assert len(problems) == 4
    assert any("lacks parameter 'name'" in p for p in problems)
    assert any("sets 'extra'" in p for p in problems)
    assert any("smoke/nb.yaml sets 'bogus'" in p for p in problems)
    assert any("sizes = 4" in p for p in problems)


def test_checker_fails_without_params_files(tmp_path):
    notebook = write_project(tmp_path, CELL, None, None)
    problems = params_problems(notebook, tmp_path)
    assert len(problems) == 2 and all(p.startswith("missing params/") for p in problems)


def test_checker_rejects_code_in_the_parameters_cell(tmp_path):
    notebook = write_project(tmp_path, "import math\nD = 4\n", "D: 4\n", "")
    with pytest.raises(ValueError, match="only hold `name = value`"):
        parameters_defaults(notebook)
    notebook.write_text(
        notebook.read_text().replace("import math\n", "").replace("D = 4", "D = len('abcd')")
    )
    with pytest.raises(ValueError, match="not a constant"):
        parameters_defaults(notebook)
