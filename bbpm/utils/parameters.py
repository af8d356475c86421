"""Notebook parameters, checked in one place against the parameters cell's defaults.

A notebook's parameters cell (the code cell tagged ``parameters``) is the single list of
its parameters: each ``name = constant`` line names one and its default gives the expected
type. papermill injects the values of ``params/*.yaml`` after that cell, and YAML types
are easy to get wrong (PyYAML reads ``1.0e6`` as the *string* ``"1.0e6"``; it needs
``1.0e+6``). :func:`notebook_parameters` reads the defaults from the notebook's source and
checks the values the notebook now holds, so a wrong type fails at the top of the notebook
with a message naming the parameter, not with a TypeError deep in a cell.

Type rules (default -> accepted values): ``bool`` -> bool; ``int`` -> int (NumPy ints too,
not bool, not float); ``float`` -> float or int; ``str`` -> str;
``list``/``tuple`` -> list or tuple, each element checked against the default's element
type when all default elements share one; ``dict`` -> dict, keys present in the default
checked recursively; ``None`` -> anything (and any parameter may be set to None).
"""

from __future__ import annotations

import ast
import json
import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PERCENT_CELL = re.compile(r"^# %%(.*)$")
# AST nodes allowed in a default: constants, containers and arithmetic on them (2**20).
_CONSTANT_NODES = (
    ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.Load,
    ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop,
)  # fmt: skip


def _parameters_cell_source(path: Path) -> str:
    """Source of the one code cell tagged ``parameters`` of a percent ``.py`` or ``.ipynb``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        cells = [
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for cell in json.loads(text)["cells"]
            if cell.get("cell_type") == "code"
            and "parameters" in cell.get("metadata", {}).get("tags", [])
        ]
    else:
        cells, current = [], None
        for line in text.splitlines():
            header = _PERCENT_CELL.match(line)
            if header:
                if current is not None:
                    cells.append("\n".join(current))
                options = header.group(1)
                is_code = "[markdown]" not in options and "[raw]" not in options
                current = [] if is_code and re.search(r"""["']parameters["']""", options) else None
            elif current is not None:
                current.append(line)
        if current is not None:
            cells.append("\n".join(current))
    if len(cells) != 1:
        raise ValueError(
            f"{path}: expected exactly one code cell tagged parameters "
            f'(# %% tags=["parameters"]), found {len(cells)}'
        )
    return cells[0]


def parameters_defaults(notebook: str | Path) -> dict[str, Any]:
    """``{name: default}`` of the notebook's parameters cell (percent ``.py`` or ``.ipynb``;
    a relative path is taken from the repository root). The cell may hold only
    ``name = constant`` assignments (``2**20`` allowed; names and calls are not)."""
    from bbpm.utils.experiment import repo_root

    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = repo_root() / path
    defaults: dict[str, Any] = {}
    for statement in ast.parse(_parameters_cell_source(path)).body:
        target = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target = statement.target
        if not isinstance(target, ast.Name) or statement.value is None:
            raise ValueError(
                f"{path.name}: the parameters cell may only hold `name = value` assignments, "
                f"got {ast.unparse(statement)!r}"
            )
        if target.id in defaults:
            raise ValueError(
                f"{path.name}: parameter {target.id!r} is assigned twice in the parameters cell"
            )
        expression = ast.Expression(body=statement.value)
        bad = [n for n in ast.walk(expression) if not isinstance(n, _CONSTANT_NODES)]
        if bad:
            raise ValueError(
                f"{path.name}: default of {target.id} = {ast.unparse(statement.value)!r} is not a "
                "constant; use a literal so papermill and the params yaml can set it"
            )
        defaults[target.id] = eval(  # noqa: S307 - constants only, checked above
            compile(expression, path.name, "eval"), {"__builtins__": {}}, {}
        )
    return defaults


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return type(value).__name__


def _hint(value: Any, expected: str) -> str:
    if isinstance(value, str) and expected in ("int", "float"):
        try:
            number = float(value)
        except ValueError:
            return ""
        example = f"{int(number)}" if number.is_integer() else f"{number!r}"
        return (
            f" (YAML reads {value} as a string: write {example}"
            + (", or use a sign in the exponent such as 1.0e+6" if "e" in value.lower() else "")
            + ")"
        )
    if expected == "int" and isinstance(value, float) and value.is_integer():
        return f" (write {int(value)})"
    return ""


def check_parameter(name: str, value: Any, default: Any) -> Any:
    """Return ``value`` (unchanged) when it fits the type of ``default`` (rules in the
    module docstring); else raise ``TypeError`` naming ``name`` (``taus[1]`` for a list
    element) and the fix."""
    expected, got = _kind(default), _kind(value)
    if expected == "None" or got == "None" or (expected == "float" and got == "int"):
        return value
    if expected != got:
        raise TypeError(
            f"parameter {name} must be {expected} like its default {default!r}, got {got} "
            f"{value!r}{_hint(value, expected)}; fix it in the params yaml or the papermill -p option"
        )
    if expected == "list":
        kinds = {_kind(item) for item in default}
        if len(kinds) == 1 and default:
            for i, item in enumerate(value):
                check_parameter(f"{name}[{i}]", item, default[0])
    elif expected == "dict":
        for key, item in value.items():
            if key in default:
                check_parameter(f"{name}[{key!r}]", item, default[key])
    return value


def check_parameters(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: value}`` for every name of ``defaults``, read from ``values``
    (a notebook's ``globals()``). Raises ``TypeError`` naming the first wrong parameter, and
    ``KeyError`` for a parameter the namespace lacks."""
    missing = [name for name in defaults if name not in values]
    if missing:
        raise KeyError(f"parameters {missing} are not defined; run the parameters cell first")
    return {
        name: check_parameter(name, values[name], default) for name, default in defaults.items()
    }


def notebook_parameters(notebook: str | Path, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters, as the notebook now holds them (``namespace``, usually
    ``globals()`` after papermill's injected cell), checked against the defaults of its
    parameters cell: ``check_parameters(namespace, parameters_defaults(notebook))``."""
    return check_parameters(namespace, parameters_defaults(notebook))
