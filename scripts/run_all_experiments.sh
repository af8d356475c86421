#!/usr/bin/env bash
# Everything, in order: the environment, every notebook with its full parameters, the book.
#
#   bash scripts/run_all_experiments.sh
#
# Outputs: results/<experiment>/ (metrics.json, raw.csv, log.txt), figures/<experiment>/*.png,
# _build/notebooks/*.ipynb (executed notebooks) and _build/html (the book).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup_env.sh
bash scripts/run_notebooks.sh full
bash scripts/build_book.sh
