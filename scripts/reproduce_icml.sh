#!/usr/bin/env bash
# Regenerate the paper's figures and tables: every notebook with its full (fixed-seed)
# parameters, then copy figures/<experiment>/*.png into paper/icml2026/figures/ and
# results/<experiment>/*.tex into paper/icml2026/tables/ (flat: main.tex refers to
# figures/NAME.png and tables/NAME.tex by base name).
#
#   bash scripts/reproduce_icml.sh              # run everything, then copy
#   bash scripts/reproduce_icml.sh --copy-only  # copy what the last runs produced
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${1:-}" != "--copy-only" ]; then
    bash scripts/setup_env.sh
    bash scripts/run_notebooks.sh full
fi

copy_flat() {  # copy_flat DEST FILE...: refuse two sources with one base name
    local dest="$1"
    shift
    mkdir -p "$dest"
    local seen=" "
    for src in "$@"; do
        local name
        name="$(basename "$src")"
        case "$seen" in *" $name "*)
            echo "[reproduce_icml] two experiments produce $name; rename one of them" >&2
            exit 1 ;;
        esac
        seen="$seen$name "
        cp "$src" "$dest/$name"
    done
    echo "[reproduce_icml] copied $# file(s) into $dest/"
}

shopt -s nullglob
pngs=(figures/*/*.png)
tables=(results/*/*.tex)
if [ ${#pngs[@]} -eq 0 ]; then
    echo "[reproduce_icml] no figures/*/*.png after the run: nothing to copy" >&2
    exit 1
fi
copy_flat paper/icml2026/figures "${pngs[@]}"
if [ ${#tables[@]} -gt 0 ]; then
    copy_flat paper/icml2026/tables "${tables[@]}"
fi
