"""The paper's generator (bbpm.paper): macro names, escaping, placeholders, provenance, the
LaTeX log check, and the rule that the .tex prose types no number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bbpm import paper
from bbpm.utils.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper" / "icml2026"


@pytest.mark.parametrize(
    ("exp_id", "record", "macro"),
    [
        ("exp08_peer_memories", "capacity_90_64mib", "ExpEightCapacityNinetySixtyFourMib"),
        ("exp08", "capacity_90_64mib", "ExpEightCapacityNinetySixtyFourMib"),
        ("bench03_kernels", "read_speedup", "BenchThreeReadSpeedup"),
        ("exp01_capacity_scaling", "n_max", "ExpOneNMax"),
        ("exp02_ablation_K_H", "k4h1_cos", "ExpTwoKFourHOneCos"),
        ("summary", "total_s", "SummaryTotalS"),
        ("exp10_x", "b_8192", "ExpTenBEightThousandOneHundredNinetyTwo"),
    ],
)
def test_macro_name_spells_digits_in_camel_case(exp_id, record, macro):
    assert paper.macro_name(exp_id, record) == macro
    assert re.fullmatch(r"[A-Za-z]+", macro)


def test_number_words():
    assert paper.number_words(0) == ["zero"]
    assert paper.number_words(15) == ["fifteen"]
    assert paper.number_words(90) == ["ninety"]
    assert paper.number_words(115) == ["one", "hundred", "fifteen"]
    assert paper.number_words(1_000_000) == ["one", "million"]
    assert paper.camel_words("08") == "Eight"
    with pytest.raises(ValueError, match="n >= 0"):
        paper.number_words(-1)


def write_records(root: Path, exp_id: str, records: dict, run: dict | None = None) -> None:
    folder = root / "results" / exp_id
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"experiment": exp_id, "records": records}
    if run is not None:
        payload["run"] = run
    (folder / "records.json").write_text(json.dumps(payload))


def rec(text: str, description: str = "") -> dict:
    return {"value": None, "text": text, "description": description}


def test_two_records_with_one_macro_are_refused(tmp_path):
    write_records(tmp_path, "exp06_drift", {"s_0_01": rec("a"), "s_0_1": rec("b")})
    with pytest.raises(ValueError, match=r"both map to the macro \\ExpSixSZeroOne"):
        paper.load_records(tmp_path / "results")


def test_latex_escape():
    assert paper.latex_escape("91.2% of a_b & $3 #1") == r"91.2\% of a\_b \& \$3 \#1"
    assert paper.latex_escape("{x}~^\\") == r"\{x\}\textasciitilde{}\^{}\textbackslash{}"
    assert paper.latex_escape("2.0× ≥ 1 − σ") == (
        r"2.0\ensuremath{\times} \ensuremath{\geq} 1 - \ensuremath{\sigma}"
    )
    assert paper.latex_escape("é") == "?"
    assert paper.latex_escape("a < b > c") == r"a \textless{} b \textgreater{} c"


def make_paper(tmp_path: Path, body: str) -> Path:
    paper_dir = tmp_path / "paper"
    (paper_dir / "sections").mkdir(parents=True)
    (paper_dir / "main.tex").write_text("\\input{sections/body}\n")
    (paper_dir / "sections" / "body.tex").write_text(body)
    return paper_dir


def test_generate_writes_macros_placeholders_tables_and_figures(tmp_path):
    run = {"commit": "0123456789abcdef", "dirty": False, "date": "2026-01-02"}
    write_records(
        tmp_path,
        "exp01_capacity_scaling",
        {"n_max": rec("3,000", "largest N"), "share": rec("91.2%"), "spare": rec("7", "unused")},
        run,
    )
    (tmp_path / "results" / "exp01_capacity_scaling" / "t.tex").write_text("table\n")
    (tmp_path / "figures" / "exp01_capacity_scaling").mkdir(parents=True)
    (tmp_path / "figures" / "exp01_capacity_scaling" / "f.png").write_bytes(b"png")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "exp01.py").write_text("")
    paper_dir = make_paper(
        tmp_path,
        "N is \\ExpOneNMax{} and \\ExpOneShare, not \\ExpTwoMissing. % \\ExpThreeCommented\n"
        "\\runfigure{exp01}{f}{c}{l}\\runfigure{exp01}{gone}{c}{l}\\runtable{exp01}{t}{x}",
    )
    done = paper.generate(tmp_path, paper_dir)
    numbers = (paper_dir / "generated" / "numbers.tex").read_text()
    assert r"\newcommand{\ExpOneNMax}{3,000}" in numbers
    assert r"\newcommand{\ExpOneShare}{91.2\%}" in numbers
    assert r"\newcommand{\ExpTwoMissing}{\notgenerated{ExpTwoMissing}}" in numbers
    assert "ExpThreeCommented" not in numbers
    assert r"\newcommand{\RunCommit}{0123456789ab}" in numbers
    assert r"\newcommand{\RunDate}{2026-01-02}" in numbers
    assert done.missing_numbers == [r"number \ExpTwoMissing"]
    assert done.missing_figures == ["figure exp01/gone.png"]
    assert done.missing_tables == []
    assert (paper_dir / "generated" / "figures" / "exp01" / "f.png").read_bytes() == b"png"
    assert (paper_dir / "generated" / "tables" / "exp01" / "t.tex").read_text() == "table\n"
    records_tex = (paper_dir / "generated" / "tables" / "records.tex").read_text()
    assert r"\textbackslash ExpOneNMax} & 3,000 & largest N" in records_tex
    assert "ExpOneSpare" not in records_tex  # the appendix lists the records the text uses
    assert r"\newcommand{\ExpOneSpare}{7}" in numbers  # defined all the same
    missing = (paper_dir / "generated" / "missing.txt").read_text().splitlines()
    assert missing == [r"number \ExpTwoMissing", "figure exp01/gone.png"]


def test_full_build_refuses_placeholders(tmp_path, monkeypatch, capsys):
    write_records(tmp_path, "exp01_x", {"a": rec("1")})
    paper_dir = make_paper(tmp_path, "\\ExpOneA and \\ExpOneB")
    monkeypatch.setenv("BBPM_ROOT", str(tmp_path))
    assert paper.main(["generate", "--paper", str(paper_dir)]) == 0
    assert paper.main(["generate", "--paper", str(paper_dir), "--full"]) == 1
    assert r"placeholder: number \ExpOneB" in capsys.readouterr().out
    (paper_dir / "sections" / "body.tex").write_text("\\ExpOneA only")
    assert paper.main(["generate", "--paper", str(paper_dir), "--full"]) == 0


def test_check_log_finds_undefined_references_and_citations():
    log = (
        "LaTeX Warning: Reference `fig:x' on page 3 undefined on input line 9.\n"
        "LaTeX Warning: Citation `bloom1970' on page 1 undefined on input line 2.\n"
        "LaTeX Warning: There were undefined references.\n"
        "LaTeX Warning: File `generated/figures/a.png' not found on input line 4.\n"
    )
    problems = paper.check_log(log)
    assert len(problems) == 4
    assert any("fig:x" in p for p in problems) and any("bloom1970" in p for p in problems)
    assert paper.check_log("Output written on main.pdf (9 pages).") == []


def test_record_metric_records_what_exists_and_skips_what_does_not(tmp_path):
    exp = Experiment("exp_paper", {"seed": 0}, root=tmp_path)
    metrics = {"a": [0.25, 0.5]}
    assert paper.record_metric(exp, "last_a", lambda: metrics["a"][-1], ".0%", "d") == "50%"
    assert paper.record_metric(exp, "missing", lambda: metrics["b"][0], ".1f") is None
    saved = json.loads((tmp_path / "results" / "exp_paper" / "records.json").read_text())
    assert list(saved["records"]) == ["last_a"]
    # a name the chapter recorded already is kept (recorded and glued once)
    assert paper.record_metric(exp, "last_a", lambda: metrics["a"][0], ".3f") == "50%"
    assert exp.records["last_a"]["value"] == 0.5
    assert paper.record_slug("BBPM injection") == "bbpm_injection"
    assert paper.record_slug("bmrt+bbpm") == "bmrt_bbpm"
    assert paper.record_slug("0.01") == "x_0_01"


def test_records_carry_the_commit_and_date_of_the_run(tmp_path):
    exp = Experiment("exp_prov", {"seed": 0}, root=tmp_path)
    exp.record("x", 1.0, ".1f", glue=False)
    run = json.loads((tmp_path / "results" / "exp_prov" / "records.json").read_text())["run"]
    assert set(run) == {"commit", "dirty", "date"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", run["date"])
    assert run["commit"] == "unknown"  # tmp_path is not a git checkout
    here = paper.run_provenance(tmp_path / "results")
    assert here["commit"] == "unknown" and here["date"] == run["date"]


def test_a_new_run_starts_without_the_previous_runs_records(tmp_path):
    Experiment("exp_again", {"seed": 0}, root=tmp_path).record("old", 1.0, glue=False)
    records = tmp_path / "results" / "exp_again" / "records.json"
    assert records.is_file()
    Experiment("exp_again", {"seed": 0}, root=tmp_path)
    assert not records.exists()
    assert paper.load_records(tmp_path / "results") == []


# --- the paper's own sources -------------------------------------------------------------

_NAME_ARGS = re.compile(
    r"\\(?:runfigure(?:wide)?(?:\[[^\]]*\])?\{[^{}]*\}\{[^{}]*\}"
    r"|runtable\{[^{}]*\}\{[^{}]*\}\{[^{}]*\}"
    r"|(?:cite[tp]?|ref|eqref|label|nb|texttt|input|bibliography(?:style)?|url)\*?"
    r"(?:\[[^\]]*\])?\{[^{}]*\})"
)
_MATH = (
    re.compile(r"\\begin\{(equation|align|gather|multline)\*?\}.*?\\end\{\1\*?\}", re.S),
    re.compile(r"\\\[.*?\\\]", re.S),
    re.compile(r"\\\(.*?\\\)", re.S),
    re.compile(r"(?<!\\)\$.*?(?<!\\)\$", re.S),
)


def typed_numbers(tex: str) -> list[str]:
    """Digits left in the prose once comments, math, citations, references, labels, names
    (\\nb, \\texttt) and the file arguments of \\runfigure/\\runtable are removed."""
    text = paper.strip_comments(tex)
    for pattern in _MATH:
        text = pattern.sub(" ", text)
    text = _NAME_ARGS.sub(" ", text)
    return [
        text[max(0, m.start() - 30) : m.end() + 30].replace("\n", " ")
        for m in re.finditer(r"\d", text)
    ]


def test_typed_numbers_finds_digits_in_prose_only():
    assert len(typed_numbers(r"holds 275 items")) == 3
    assert (
        typed_numbers(r"$N = 10^5$ in \nb{exp01}, \citep{bloom1970}, Table~\ref{tab:exp01}") == []
    )
    assert typed_numbers("\\runfigure{exp01}{f1}{caption}{fig:f} % 12 in a comment") == []
    assert typed_numbers(r"\ExpOneNMax{} items; \begin{equation}x_1\end{equation}") == []


def paper_sources() -> list[Path]:
    return [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex"))]


@pytest.mark.parametrize("path", paper_sources(), ids=lambda p: p.name)
def test_paper_prose_types_no_number(path):
    tex = path.read_text(encoding="utf-8")
    if path.name == "main.tex":  # the preamble holds layout options, not results
        tex = tex[tex.index("\\begin{document}") :]
    assert typed_numbers(tex) == [], "write numbers as macros from the records"


def test_paper_figures_and_tables_name_notebooks():
    """Each figure or table names a notebook (notebooks/NAME.py; the generator shows a
    placeholder for one this checkout has not run or does not have)."""
    text = "\n".join(paper.strip_comments(p.read_text()) for p in paper_sources())
    uses = paper.FIGURE_USE.findall(text) + paper.TABLE_USE.findall(text)
    assert len(uses) >= 10
    for notebook, name in uses:
        assert re.fullmatch(r"(exp|bench)\d\d(_[a-z0-9_]+)?|summary", notebook), notebook
        assert re.fullmatch(r"[A-Za-z0-9_]+", name), name
