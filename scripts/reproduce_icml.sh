#!/usr/bin/env bash
# Regenerate the paper from fresh runs: every notebook with its full (fixed-seed) parameters,
# then the paper's numbers, tables and figures (python -m bbpm.paper generate, into
# paper/icml2026/generated/) and, when LaTeX is installed, the PDF (scripts/build_paper.sh --full).
#
#   bash scripts/reproduce_icml.sh              # run everything, then build the paper
#   bash scripts/reproduce_icml.sh --copy-only  # only regenerate the paper from the last runs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if [ "${1:-}" != "--copy-only" ]; then
    bash scripts/setup_env.sh
    bash scripts/run_notebooks.sh full
fi

if command -v latexmk >/dev/null 2>&1; then
    PY="$PY" bash scripts/build_paper.sh --full
else
    "$PY" -m bbpm.paper generate --full
    echo "[reproduce_icml] latexmk not installed: generated paper/icml2026/generated/ only (see scripts/build_paper.sh)"
fi
