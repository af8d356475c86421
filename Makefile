# One-word entry points. Everything runs on a CPU; see book/reproduce.md.
#   make install   create/refresh .venv (torch pinned to the CPU wheel) and its Jupyter kernel
#   make test      install, pytest, every notebook with smoke parameters, the book
#   make smoke     every notebook with smoke parameters (params/smoke/*.yaml)
#   make exp       every notebook with full parameters (params/*.yaml)
#   make book      install, every notebook with full parameters, the book (_build/html);
#                  notebooks whose inputs did not change are re-used, FORCE=1 re-runs all
#   make lint      ruff check + ruff format --check
#   make reproduce full notebooks, then the paper (numbers, tables, figures, PDF) with no placeholder
#   make paper     numbers/tables/figures from the results, then latexmk: paper/icml2026/main.pdf
#   make paper-full  the same, failing when a number or figure of the paper was not produced
#   make arxiv     paper sources + generated files + .bbl as _build/paper/bbpm-arxiv.tar.gz
#   make clean     remove build outputs (_build, book/_build, caches); clean-all: also results/ figures/
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test pytest smoke exp book lint reproduce paper paper-full paper-check paper-if-tex arxiv clean clean-all

install:
	bash scripts/setup_env.sh

# pytest exits 5 when it collects no test: make stops there too (nothing masks it).
test: install
	$(PY) -m pytest
	bash scripts/run_notebooks.sh smoke
	$(MAKE) paper-if-tex
	bash scripts/build_book.sh

pytest: install
	$(PY) -m pytest

smoke:
	bash scripts/run_notebooks.sh smoke

exp:
	bash scripts/run_notebooks.sh full

book: install
	bash scripts/run_notebooks.sh full
	$(MAKE) paper-if-tex
	bash scripts/build_book.sh

lint:
	bash scripts/format_and_lint.sh

reproduce:
	bash scripts/reproduce_icml.sh

# The paper (scripts/build_paper.sh): fails on a LaTeX error, an undefined reference or citation,
# or a missing file; paper-full also on a number/figure this build did not produce.
paper:
	PY=$(PY) bash scripts/build_paper.sh

paper-full:
	PY=$(PY) bash scripts/build_paper.sh --full

# The built PDF as a reader gets it: pages rendered, page count, placeholders, the arXiv tarball.
paper-check:
	$(PY) -m pytest -q tests/test_paper_pdf.py

# make test / make book build the PDF when LaTeX is installed (.ci/run installs it; with
# BBPM_REQUIRE_PAPER=1 a missing LaTeX fails instead of skipping).
paper-if-tex:
	@if command -v latexmk >/dev/null 2>&1 || [ "$${BBPM_REQUIRE_PAPER:-0}" = 1 ]; then \
		PY=$(PY) bash scripts/build_paper.sh && $(MAKE) paper-check; \
	else echo "[paper] latexmk not installed: skipping the PDF (see scripts/build_paper.sh)"; fi

arxiv: paper
	$(PY) -m bbpm.paper arxiv

clean:
	rm -rf _build book/_build .pytest_cache .ruff_cache .hypothesis
	rm -rf paper/icml2026/generated paper/icml2026/latexmk.out $(addprefix paper/icml2026/main.,aux bbl blg log out fls fdb_latexmk pdf)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

clean-all: clean
	rm -rf results figures
