#!/usr/bin/env bash
# Lint and check formatting with ruff (configuration in pyproject.toml).
#
#   bash scripts/format_and_lint.sh         # check only; non-zero exit on any finding
#   bash scripts/format_and_lint.sh --fix   # apply safe fixes and reformat
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -x "$ROOT/.venv/bin/ruff" ]; then
    RUFF="$ROOT/.venv/bin/ruff"
elif command -v ruff >/dev/null 2>&1; then
    RUFF="$(command -v ruff)"
else
    echo "ruff not found: run 'bash scripts/setup_env.sh' (or pip install ruff)" >&2
    exit 1
fi

case "${1:-}" in
    --fix)
        "$RUFF" check --fix .
        "$RUFF" format .
        ;;
    "")
        "$RUFF" check .
        "$RUFF" format --check .
        ;;
    *)
        echo "usage: $0 [--fix]" >&2
        exit 2
        ;;
esac
