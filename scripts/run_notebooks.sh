#!/usr/bin/env bash
# Execute the percent-format notebooks with papermill and store them for the book.
#
#   bash scripts/run_notebooks.sh smoke            # every notebooks/*.py with params/smoke/NAME.yaml
#   bash scripts/run_notebooks.sh full exp04 exp02 # the named notebooks with params/NAME.yaml
#
# Each notebook runs as
#   papermill notebooks/NAME.py _build/notebooks/NAME.ipynb -f PARAMS --cwd REPO_ROOT
# with the venv's papermill. The first failing notebook (any failing cell) stops the run with
# a non-zero exit; its partial notebook, with the traceback, stays in _build/notebooks/.
# BBPM_LOG_OUTPUT=1 also streams every cell's output to the console.
#
# Cached execution (bbpm/notebook_cache.py): a notebook runs again only when its source, its
# params file, the bbpm package source or the installed environment changed since its last
# successful run (recorded in _build/notebooks/NAME.stamp.json); otherwise the stored notebook
# is re-used. The summary notebook always runs (it reports this build). FORCE=1 runs every
# notebook (`make book FORCE=1`).
set -euo pipefail
# On a machine shared with other jobs, spinning OpenMP threads wait for descheduled peers and
# can make torch ops 10-100x slower (bench01-03); `export OMP_WAIT_POLICY=PASSIVE` avoids that,
# but on a quiet machine it slows the torch per-column write down (compare
# `python -m bbpm.bench` with and without it), so it is not the default.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { echo "usage: $0 smoke|full [NAME ...]   (NAME: exp04, notebooks/exp04.py, ...)" >&2; exit 2; }
[ $# -ge 1 ] || usage
mode="$1"
shift
case "$mode" in
    smoke) params_dir="params/smoke" ;;
    full) params_dir="params" ;;
    *) usage ;;
esac

# The stored notebooks carry no progress bars (bbpm.utils.progress reads this).
export BBPM_PROGRESS=0

if [ -x "$ROOT/.venv/bin/papermill" ]; then
    PAPERMILL="$ROOT/.venv/bin/papermill"
elif command -v papermill >/dev/null 2>&1; then
    PAPERMILL="$(command -v papermill)"
else
    echo "papermill not found: run 'bash scripts/setup_env.sh' (or 'make install') first" >&2
    exit 1
fi

# The interpreter beside papermill: its installed packages are the environment in the stamps.
PYTHON="$(dirname "$PAPERMILL")/python"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"

names=()
if [ $# -gt 0 ]; then
    for arg in "$@"; do
        name="$(basename "$arg")"
        names+=("${name%.py}")
    done
else
    for path in notebooks/*.py; do
        [ -e "$path" ] || continue
        name="$(basename "$path")"
        names+=("${name%.py}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "no notebooks found in notebooks/*.py" >&2
    exit 1
fi

# Check every input exists before spending time on the first notebook.
for name in "${names[@]}"; do
    [ -f "notebooks/$name.py" ] || { echo "missing notebooks/$name.py" >&2; exit 1; }
    [ -f "$params_dir/$name.yaml" ] || { echo "missing $params_dir/$name.yaml (parameters for $name, $mode run)" >&2; exit 1; }
done

extra=()
if [ "${BBPM_LOG_OUTPUT:-0}" = "1" ]; then extra+=(--log-output); fi
mkdir -p _build/notebooks
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
total_start=$(now_ms)
cache() { "$PYTHON" "$ROOT/bbpm/notebook_cache.py" --root "$ROOT" "$@"; }
reused=0
for name in "${names[@]}"; do
    params="$params_dir/$name.yaml"
    if [ "${FORCE:-0}" != "1" ] && [ "$name" != "summary" ] && cache fresh "$name" "$params"; then
        echo "[$mode] $name: inputs unchanged since its last run, re-using _build/notebooks/$name.ipynb (FORCE=1 runs it)"
        reused=$((reused + 1))
        continue
    fi
    cache forget "$name"
    echo "[$mode] $name: papermill notebooks/$name.py _build/notebooks/$name.ipynb -f $params"
    start=$(now_ms)
    # read by bbpm.utils.provenance for the line under each figure
    export BBPM_NOTEBOOK="notebooks/$name.py" BBPM_PARAMS_FILE="$params"
    if ! "$PAPERMILL" "notebooks/$name.py" "_build/notebooks/$name.ipynb" \
        -f "$params" --cwd "$ROOT" --start-timeout 180 ${extra[@]+"${extra[@]}"}; then
        echo "[$mode] FAILED: $name (the executed cells and the traceback are in _build/notebooks/$name.ipynb)" >&2
        exit 1
    fi
    seconds="$(seconds_since "$start")"
    cache stamp "$name" "$params" --seconds "$seconds"
    echo "[$mode] $name: done in $seconds s"
done
echo "[$mode] ${#names[@]} notebook(s), $reused re-used, in $(seconds_since "$total_start") s"
