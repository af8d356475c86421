#!/usr/bin/env bash
# Build the paper, paper/icml2026/main.pdf, from whatever results exist (smoke or full runs).
#
#   bash scripts/build_paper.sh          # placeholders allowed (listed), e.g. from smoke results
#   bash scripts/build_paper.sh --full   # a full build: fails when any placeholder remains
#
# 1. python -m bbpm.paper generate: generated/numbers.tex (one macro per record of
#    results/*/records.json), generated/tables/, generated/figures/ (copied from figures/).
# 2. latexmk (pdflatex + bibtex); a LaTeX error stops it.
# 3. python -m bbpm.paper check-log: fails on an undefined reference or citation or a missing file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if ! command -v latexmk >/dev/null 2>&1 || ! command -v pdflatex >/dev/null 2>&1; then
    echo "[paper] latexmk/pdflatex not found. On Debian/Ubuntu (as root):" >&2
    echo "  apt-get install latexmk texlive-latex-recommended texlive-fonts-recommended texlive-latex-extra poppler-utils" >&2
    exit 1
fi

"$PY" -m bbpm.paper generate "$@"
PAPER=paper/icml2026
rm -f "$PAPER/main.pdf"
if ! (cd "$PAPER" && latexmk -pdf -interaction=nonstopmode -halt-on-error -file-line-error main.tex >latexmk.out 2>&1); then
    grep -E '^\./.*:[0-9]+:|^!' -A3 "$PAPER/main.log" >&2 || tail -40 "$PAPER/latexmk.out" >&2
    echo "[paper] LaTeX failed ($PAPER/main.log)" >&2
    exit 1
fi
"$PY" -m bbpm.paper check-log "$PAPER/main.log"
echo "[paper] wrote $PAPER/main.pdf ($(grep -c 'PAPER PLACEHOLDER' "$PAPER/main.log" || true) placeholder use(s); list: $PAPER/generated/missing.txt)"
