#!/usr/bin/env bash
# Build the Jupyter Book (1.x, offline) into _build/html; any Sphinx warning fails the build.
#
#   bash scripts/build_book.sh
#
# The book shows the notebooks stored by scripts/run_notebooks.sh in _build/notebooks/
# (reached through the committed symlink book/notebooks -> ../_build/notebooks); it never
# executes them. `jupyter-book build book` typed by hand works too (output: book/_build/html).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -x "$ROOT/.venv/bin/jupyter-book" ]; then
    JUPYTER_BOOK="$ROOT/.venv/bin/jupyter-book"
elif command -v jupyter-book >/dev/null 2>&1; then
    JUPYTER_BOOK="$(command -v jupyter-book)"
else
    echo "jupyter-book not found: run 'bash scripts/setup_env.sh' (or 'make install') first" >&2
    exit 1
fi

# The symlink is committed; recreate it if a checkout lost it (e.g. core.symlinks=false).
if [ ! -L book/notebooks ]; then
    if [ -e book/notebooks ]; then
        echo "book/notebooks exists but is not the symlink to ../_build/notebooks; remove it" >&2
        exit 1
    fi
    ln -s ../_build/notebooks book/notebooks
fi

# Every notebook chapter in the table of contents needs its executed notebook.
missing=0
chapters="$(sed -nE 's/^[[:space:]]*-?[[:space:]]*file:[[:space:]]*(notebooks\/[^[:space:]#]+).*/\1/p' book/_toc.yml)"
for chapter in $chapters; do
    executed="_build/${chapter%.ipynb}.ipynb"
    if [ ! -f "$executed" ]; then
        echo "missing $executed (chapter $chapter of book/_toc.yml)" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    echo "run the notebooks first: bash scripts/run_notebooks.sh smoke  (or: full)" >&2
    exit 1
fi

# --all: rebuild every page, so a warning in an unchanged page still fails the build.
"$JUPYTER_BOOK" build book --path-output . -W -n --keep-going --all

# The paper's PDF (make paper; make test and make book build it before the book when LaTeX is
# installed) goes beside the book's pages: the introduction links to bbpm-paper.pdf.
if [ -f paper/icml2026/main.pdf ]; then
    cp paper/icml2026/main.pdf _build/html/bbpm-paper.pdf
    echo "[build_book] copied the paper to _build/html/bbpm-paper.pdf"
else
    echo "[build_book] no paper/icml2026/main.pdf (make paper needs LaTeX): the introduction's link to bbpm-paper.pdf is dead in this build" >&2
fi

# Check what the book shows: clean notebook outputs (tests/test_notebook_outputs.py), and every
# page opened in headless Chromium for rendered math, images and internal links
# (tests/test_book_browser.py; skipped without chromium unless BBPM_REQUIRE_BROWSER=1).
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
if "$PYTHON" -c "import pytest" 2>/dev/null; then
    echo "[build_book] checks: pytest -m book tests/test_notebook_outputs.py tests/test_book_browser.py"
    "$PYTHON" -m pytest -q -m book tests/test_notebook_outputs.py tests/test_book_browser.py
else
    echo "[build_book] pytest not installed: book checks skipped (pip install -e '.[dev]')"
fi
echo "[build_book] open _build/html/index.html"
