"""The paper's numbers, tables and figures, generated from the recorded results.

Every number in ``paper/icml2026`` is a LaTeX macro written by this module from the named
records of the notebooks (``results/<exp_id>/records.json``, see
:meth:`bbpm.utils.experiment.Experiment.record`); nothing is typed into the ``.tex`` sources.

Macro names (letters only, so TeX accepts them as control words): the experiment's short
name (its id up to the first underscore: ``exp08_peer_memories`` -> ``exp08``) followed by the
record name; both are split at underscores and at every switch between letters and digits,
each run of digits is spelled as the integer it denotes (``08`` -> ``Eight``, ``64`` ->
``SixtyFour``, ``1000`` -> ``OneThousand``) and every word is capitalised. Examples:
``exp08`` + ``capacity_90_64mib`` -> ``\\ExpEightCapacityNinetySixtyFourMib``;
``bench03_kernels`` + ``read_speedup`` -> ``\\BenchThreeReadSpeedup``. Two records that
map to one name (``a_1b`` and ``a1_b``) are an error.

``python -m bbpm.paper generate`` writes into ``paper/icml2026/generated/``:

- ``numbers.tex``: one ``\\newcommand`` per record (its LaTeX-escaped text), the run's
  provenance (``\\RunCommit``, ``\\RunDate``, ``\\RunMode``), and for every macro the paper
  uses that no record defines, a visible placeholder ``\\notgenerated{name}``;
- ``tables/<notebook>/*.tex``: the LaTeX tables the notebooks wrote, and
  ``tables/records.tex``, every record of this build;
- ``figures/<notebook>/*.png``: the notebooks' figures;
- ``missing.txt``: the placeholders (numbers and figures the paper uses that this build lacks).

With ``--full`` it fails when any placeholder remains. ``python -m bbpm.paper check-log
main.log`` fails on undefined references or citations and on missing files in a LaTeX log;
``python -m bbpm.paper arxiv`` packs the sources with the generated files and the ``.bbl``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Prefixes of the macros that stand for recorded values (the experiments' short names
#: capitalised, and the run's provenance). The paper's other macros never start with these.
RECORD_MACRO = re.compile(r"\\((?:Exp|Bench|Summary|Run)[A-Z][A-Za-z]*)")
FIGURE_USE = re.compile(r"\\runfigure(?:wide)?(?:\[[^\]]*\])?\{([^}]*)\}\{([^}]*)\}")
TABLE_USE = re.compile(r"\\runtable\{([^}]*)\}\{([^}]*)\}")
PROVENANCE_MACROS = (
    "RunCommit",
    "RunDate",
    "RunMode",
    "RunDirty",
    "RunCpuCount",
    "RunTorch",
    "RunPython",
    "RunGpu",
)


def record_slug(text: str) -> str:
    """A record-name part from free text: ``"BBPM injection"`` -> ``bbpm_injection``."""
    slug = re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")
    return slug if slug[:1].isalpha() else f"x_{slug}"


def record_metric(exp, name: str, get, fmt: str = "", description: str = "") -> str | None:
    """``exp.record(name, get(), fmt, description)`` for a number the paper quotes, read from the
    run's metrics by ``get``. When this run did not produce it (a key or index missing: a smoke
    run, another mode), nothing is recorded, the log says so and the paper shows a placeholder
    for it (``python -m bbpm.paper generate`` lists it; ``--full`` refuses it). A name the
    chapter has already recorded is kept as the chapter recorded it (one record per number)."""
    if name in exp.records:
        return exp.records[name]["text"]
    try:
        value = get()
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as error:
        exp.logger.info(
            "record %s not produced by this run (%s: %s)", name, type(error).__name__, error
        )
        return None
    return exp.record(name, value, fmt, description)


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def number_words(n: int) -> list[str]:
    """English words of a non-negative integer: 64 -> ['sixty', 'four']."""
    if n < 0:
        raise ValueError(f"number_words needs n >= 0, got {n}")
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for scale, word in _SCALES:
        if n >= scale:
            rest = number_words(n % scale) if n % scale else []
            return number_words(n // scale) + [word] + rest
    raise AssertionError("unreachable")  # pragma: no cover


def camel_words(text: str) -> str:
    """``capacity_90_64mib`` -> ``CapacityNinetySixtyFourMib`` (see the module docstring)."""
    words: list[str] = []
    for run in re.findall(r"[A-Za-z]+|[0-9]+", text):
        words.extend(number_words(int(run)) if run.isdigit() else [run.lower()])
    return "".join(word.capitalize() for word in words)


def short_name(exp_id: str) -> str:
    """The experiment's short name: its id up to the first underscore."""
    return exp_id.split("_")[0]


def macro_name(exp_id: str, record: str) -> str:
    """The TeX macro (without backslash) for one record of one experiment."""
    return camel_words(short_name(exp_id)) + camel_words(record)


_UNICODE = {
    "×": r"\ensuremath{\times}",
    "≥": r"\ensuremath{\geq}",
    "≤": r"\ensuremath{\leq}",
    "±": r"\ensuremath{\pm}",
    "−": "-",
    "–": "--",
    "—": "---",
    "→": r"\ensuremath{\rightarrow}",
    "≈": r"\ensuremath{\approx}",
    "μ": r"\ensuremath{\mu}",
    "λ": r"\ensuremath{\lambda}",
    "σ": r"\ensuremath{\sigma}",
    "’": "'",
    "…": r"\ldots{}",
}
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX paragraph: specials escaped, a few symbols mapped to math,
    any other non-ASCII character replaced by ``?`` (pdfLaTeX would stop on it)."""
    out = []
    for char in str(text):
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif char in _UNICODE:
            out.append(_UNICODE[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            out.append("?")
    return "".join(out)


@dataclass
class Record:
    exp_id: str
    name: str
    text: str
    description: str
    macro: str


@dataclass
class Generated:
    """What :func:`generate` wrote and what it could not."""

    records: list[Record] = field(default_factory=list)
    missing_numbers: list[str] = field(default_factory=list)
    missing_figures: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def placeholders(self) -> list[str]:
        return self.missing_numbers + self.missing_figures + self.missing_tables


def load_records(results: Path) -> list[Record]:
    """Every record of every ``results/*/records.json``, sorted by experiment and name."""
    found: list[Record] = []
    for path in sorted(results.glob("*/records.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        exp_id = payload.get("experiment", path.parent.name)
        for name, entry in sorted(payload.get("records", {}).items()):
            found.append(
                Record(
                    exp_id,
                    name,
                    str(entry.get("text", "")),
                    str(entry.get("description", "")),
                    macro_name(exp_id, name),
                )
            )
    seen: dict[str, Record] = {}
    for record in found:
        other = seen.get(record.macro)
        if other is not None:
            raise ValueError(
                f"records {other.exp_id}/{other.name} and {record.exp_id}/{record.name} both "
                f"map to the macro \\{record.macro}; rename one of them"
            )
        seen[record.macro] = record
    return found


def notebook_stem(exp_id: str, root: Path) -> str:
    """The notebook that writes ``exp_id``: notebooks/<exp_id>.py or notebooks/<short>.py."""
    if (root / "notebooks" / f"{exp_id}.py").is_file():
        return exp_id
    return short_name(exp_id)


def run_provenance(results: Path) -> dict[str, str]:
    """The commit and date of the runs behind the results: the newest date among the
    records/metrics files, the commits that wrote them (several when the runs differ) and
    whether any run had uncommitted changes. ``"unknown"`` when no run recorded them."""
    runs = []
    for path in sorted(results.glob("*/records.json")) + sorted(results.glob("*/metrics.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        run = payload.get("run") or payload.get("provenance")
        if isinstance(run, Mapping) and run.get("commit"):
            runs.append(run)
    if not runs:
        return {"commit": "unknown", "date": "unknown", "dirty": "unknown"}
    commits = sorted({str(run["commit"])[:12] for run in runs})
    dates = sorted({str(run.get("date", "unknown")) for run in runs})
    dirty = any(run.get("dirty") for run in runs)
    return {
        "commit": ", ".join(commits),
        "date": dates[-1] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}",
        "dirty": "with uncommitted changes" if dirty else "clean",
    }


def run_environment(results: Path) -> dict[str, str]:
    """The machine the runs used, from the metrics' ``environment``: CPU count, torch and
    Python versions, the CUDA device (``none``); values that differ between runs are joined."""
    seen: dict[str, list[str]] = {"cpu_count": [], "torch": [], "python": [], "gpu": []}
    for path in sorted(results.glob("*/metrics.json")):
        env = json.loads(path.read_text(encoding="utf-8")).get("environment") or {}
        values = {
            "cpu_count": env.get("cpu_count"),
            "torch": env.get("torch"),
            "python": env.get("python"),
            "gpu": env.get("cuda_device") or ("none" if "cuda_available" in env else None),
        }
        for key, value in values.items():
            if value is not None and str(value) not in seen[key]:
                seen[key].append(str(value))
    return {key: ", ".join(values) or "unknown" for key, values in seen.items()}


def run_mode(results: Path, root: Path) -> str:
    """``full``, ``smoke``, ``mixed``, ``custom`` or ``none``: which parameter files the runs
    used. A run whose parameters match both files (a notebook whose smoke and full settings
    agree) fits either mode."""
    import yaml  # pyyaml comes with papermill and jupyter-book

    common = {"full", "smoke"}
    seen = False
    for path in sorted(results.glob("*/metrics.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        used = metrics.get("hyperparameters", {})
        stem = notebook_stem(metrics.get("experiment", path.parent.name), root)
        fits = set()
        for name, params in (
            ("full", root / "params" / f"{stem}.yaml"),
            ("smoke", root / "params" / "smoke" / f"{stem}.yaml"),
        ):
            if params.is_file():
                wanted = yaml.safe_load(params.read_text(encoding="utf-8")) or {}
                if all(used.get(k) == v for k, v in wanted.items()):
                    fits.add(name)
        if not fits:
            return "custom"
        seen = True
        common &= fits
    if not seen:
        return "none"
    if not common:
        return "mixed"
    return "full" if "full" in common else "smoke"


def tex_sources(paper_dir: Path) -> list[Path]:
    """The paper's hand-written .tex files (everything but generated/)."""
    return sorted(
        p for p in paper_dir.rglob("*.tex") if "generated" not in p.relative_to(paper_dir).parts
    )


def used_macros(sources: Iterable[Path]) -> set[str]:
    """Record macros the paper uses (comments ignored)."""
    used: set[str] = set()
    for path in sources:
        used.update(RECORD_MACRO.findall(strip_comments(path.read_text(encoding="utf-8"))))
    return used


def strip_comments(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def records_table(records: list[Record], root: Path, used: set[str] | None = None) -> str:
    """The records as a longtable (for the appendix): macro, text, description; only those
    whose macro is in ``used`` (the paper's text) when given."""
    lines = []
    current = None
    for record in records:
        if used is not None and record.macro not in used:
            continue
        if record.exp_id != current:
            current = record.exp_id
            stem = latex_escape(notebook_stem(record.exp_id, root))
            lines.append(r"\midrule")
            lines.append(rf"\multicolumn{{3}}{{l}}{{\texttt{{notebooks/{stem}.py}}}} \\")
        lines.append(
            rf"\texttt{{\textbackslash {record.macro}}} & {latex_escape(record.text)} & "
            rf"{latex_escape(record.description)} \\"
        )
    if not lines:
        lines = [r"\midrule", r"\multicolumn{3}{l}{no records in this build} \\"]
    head = [
        r"\begin{longtable}{@{}p{0.36\textwidth}p{0.16\textwidth}p{0.42\textwidth}@{}}",
        r"\toprule",
        r"macro & text & description \\",
        r"\endhead",
    ]
    return "\n".join([*head, *lines, r"\bottomrule", r"\end{longtable}"]) + "\n"


def generate(root: Path, paper_dir: Path, out_dir: Path | None = None) -> Generated:
    """Write numbers.tex, tables/ and figures/ under ``out_dir`` (default
    ``paper_dir/generated``) from ``root/results`` and ``root/figures``."""
    results = root / "results"
    out_dir = out_dir or paper_dir / "generated"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    done = Generated(records=load_records(results) if results.is_dir() else [])
    done.provenance = run_provenance(results) if results.is_dir() else run_provenance(out_dir)
    mode = run_mode(results, root) if results.is_dir() else "none"
    env = run_environment(results)

    # Figures and the notebooks' tables, one folder per notebook.
    for png in sorted((root / "figures").glob("*/*.png")):
        _copy(png, out_dir / "figures" / notebook_stem(png.parent.name, root) / png.name)
    for table in sorted(results.glob("*/*.tex")):
        _copy(table, out_dir / "tables" / notebook_stem(table.parent.name, root) / table.name)
    sources = tex_sources(paper_dir)
    used = used_macros(sources)
    (out_dir / "tables" / "records.tex").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / "tables" / "records.tex").write_text(
        records_table(done.records, root, used), encoding="utf-8"
    )

    text = "\n".join(strip_comments(p.read_text(encoding="utf-8")) for p in sources)
    for notebook, name in FIGURE_USE.findall(text):
        if not (out_dir / "figures" / notebook / f"{name}.png").is_file():
            done.missing_figures.append(f"figure {notebook}/{name}.png")
    for notebook, name in TABLE_USE.findall(text):
        if not (out_dir / "tables" / notebook / f"{name}.tex").is_file():
            done.missing_tables.append(f"table {notebook}/{name}.tex")

    defined = {record.macro for record in done.records}
    lines = [
        "% Generated by `python -m bbpm.paper generate` from results/*/records.json: do not edit.",
        r"\providecommand{\notgenerated}[1]{\textbf{\textcolor{red}{[#1: not generated]}}}",
        rf"\newcommand{{\RunCommit}}{{{latex_escape(done.provenance['commit'])}}}",
        rf"\newcommand{{\RunDate}}{{{latex_escape(done.provenance['date'])}}}",
        rf"\newcommand{{\RunDirty}}{{{latex_escape(done.provenance['dirty'])}}}",
        rf"\newcommand{{\RunMode}}{{{latex_escape(mode)}}}",
        rf"\newcommand{{\RunCpuCount}}{{{latex_escape(env['cpu_count'])}}}",
        rf"\newcommand{{\RunTorch}}{{{latex_escape(env['torch'])}}}",
        rf"\newcommand{{\RunPython}}{{{latex_escape(env['python'])}}}",
        rf"\newcommand{{\RunGpu}}{{{latex_escape(env['gpu'])}}}",
    ]
    for record in done.records:
        lines.append(f"% {record.exp_id}/{record.name}: {latex_escape(record.description)}")
        lines.append(rf"\newcommand{{\{record.macro}}}{{{latex_escape(record.text)}}}")
    for macro in sorted(used - defined - set(PROVENANCE_MACROS)):
        done.missing_numbers.append(f"number \\{macro}")
        lines.append(rf"\newcommand{{\{macro}}}{{\notgenerated{{{macro}}}}}")
    (out_dir / "numbers.tex").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "missing.txt").write_text(
        "".join(f"{item}\n" for item in done.placeholders), encoding="utf-8"
    )
    return done


_LOG_PROBLEMS = (
    re.compile(r"LaTeX Warning: (?:Reference|Citation) `[^']*' on page \d+ undefined"),
    re.compile(r"LaTeX Warning: There were undefined references"),
    re.compile(r"Package natbib Warning: Citation `[^']*'[^\n]*undefined"),
    re.compile(r"LaTeX Warning: File `[^']*' not found"),
    re.compile(r"! LaTeX Error: File `[^']*' not found"),
    re.compile(r"! Undefined control sequence"),
    re.compile(r"LaTeX Warning: There were multiply-defined labels"),
)


def check_log(log_text: str) -> list[str]:
    """Problems in a LaTeX log that must fail the build."""
    problems = []
    for pattern in _LOG_PROBLEMS:
        problems.extend(match.group(0) for match in pattern.finditer(log_text))
    return sorted(set(problems))


ARXIV_FILES = ("main.tex", "references.bib", "main.bbl")


def arxiv_tarball(paper_dir: Path, dest: Path) -> Path:
    """A tarball of the paper that compiles on its own with pdflatex (no bibtex needed): the
    sources, the ``.bbl``, the generated numbers and tables, and the figures the paper uses."""
    missing = [name for name in ARXIV_FILES if not (paper_dir / name).is_file()]
    if missing or not (paper_dir / "generated" / "numbers.tex").is_file():
        raise FileNotFoundError(
            f"{paper_dir} lacks {missing or ['generated/numbers.tex']}: run `make paper` first"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for name in ARXIV_FILES:
            tar.add(paper_dir / name, arcname=name)
        used = {
            f"generated/figures/{notebook}/{name}.png"
            for notebook, name in FIGURE_USE.findall(
                "\n".join(
                    strip_comments(p.read_text(encoding="utf-8")) for p in tex_sources(paper_dir)
                )
            )
        }
        for folder in ("sections", "generated"):
            for path in sorted((paper_dir / folder).rglob("*")):
                name = str(path.relative_to(paper_dir))
                if path.is_file() and (path.suffix in {".tex", ".txt"} or name in used):
                    tar.add(path, arcname=name)
    return dest


def main(argv: list[str] | None = None) -> int:
    from bbpm.utils.experiment import repo_root

    parser = argparse.ArgumentParser(
        prog="python -m bbpm.paper", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write paper/icml2026/generated/ from results/")
    gen.add_argument("--full", action="store_true", help="fail when any placeholder remains")
    gen.add_argument("--out", type=Path, default=None, help="output folder (default: generated/)")
    log = sub.add_parser("check-log", help="fail on undefined references/citations in a log")
    log.add_argument("log", type=Path)
    arx = sub.add_parser("arxiv", help="write the self-contained source tarball")
    arx.add_argument("--out", type=Path, default=None)
    for p in (gen, arx):
        p.add_argument("--paper", type=Path, default=None, help="paper folder")
    args = parser.parse_args(argv)
    root = repo_root()

    if args.command == "check-log":
        problems = check_log(args.log.read_text(encoding="utf-8", errors="replace"))
        for problem in problems:
            print(f"[paper] {problem}", file=sys.stderr)
        return 1 if problems else 0

    paper_dir = args.paper or root / "paper" / "icml2026"
    if args.command == "arxiv":
        dest = arxiv_tarball(paper_dir, args.out or root / "_build" / "paper" / "bbpm-arxiv.tar.gz")
        print(f"[paper] wrote {dest}")
        return 0

    done = generate(root, paper_dir, args.out)
    print(
        f"[paper] {len(done.records)} recorded numbers; run commit {done.provenance['commit']} "
        f"({done.provenance['date']})"
    )
    for item in done.placeholders:
        print(f"[paper] placeholder: {item} (not produced by this build)")
    if done.placeholders:
        print(f"[paper] {len(done.placeholders)} placeholder(s) in the paper")
        if args.full:
            print("[paper] --full: a full build must have no placeholder", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
