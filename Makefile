# One-word entry points. Everything runs on a CPU; see book/reproduce.md.
#   make install   create/refresh .venv (torch pinned to the CPU wheel) and its Jupyter kernel
#   make test      install, pytest, every notebook with smoke parameters, the book
#   make smoke     every notebook with smoke parameters (params/smoke/*.yaml)
#   make exp       every notebook with full parameters (params/*.yaml)
#   make book      install, every notebook with full parameters, the book (_build/html);
#                  notebooks whose inputs did not change are re-used, FORCE=1 re-runs all
#   make lint      ruff check + ruff format --check
#   make reproduce full notebooks, then copy the figures/tables into paper/icml2026/
#   make paper     compile paper/icml2026/main.tex with latexmk
#   make clean     remove build outputs (_build, book/_build, caches); clean-all: also results/ figures/
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
PAPER_TEX ?= paper/icml2026/main.tex

.PHONY: install test pytest smoke exp book lint reproduce paper clean clean-all

install:
	bash scripts/setup_env.sh

# pytest exits 5 when it collects no test: make stops there too (nothing masks it).
test: install
	$(PY) -m pytest
	bash scripts/run_notebooks.sh smoke
	bash scripts/build_book.sh

pytest: install
	$(PY) -m pytest

smoke:
	bash scripts/run_notebooks.sh smoke

exp:
	bash scripts/run_notebooks.sh full

book: install
	bash scripts/run_notebooks.sh full
	bash scripts/build_book.sh

lint:
	bash scripts/format_and_lint.sh

reproduce:
	bash scripts/reproduce_icml.sh

paper:
	@if ! command -v latexmk >/dev/null 2>&1; then \
		echo "latexmk is not installed. On Debian/Ubuntu: sudo apt-get install latexmk texlive-latex-extra"; \
		echo "(then: make reproduce, to generate the figures, and make paper)"; \
		exit 1; \
	fi
	cd $(dir $(PAPER_TEX)) && latexmk -g -pdf -interaction=nonstopmode -halt-on-error $(notdir $(PAPER_TEX))

clean:
	rm -rf _build book/_build .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

clean-all: clean
	rm -rf results figures
