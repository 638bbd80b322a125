# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

.PHONY: setup demo test lint gallery bench web
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/impasto examples/chelsea.png examples/starry_night_van_gogh.jpg --size 384 -o out/chelsea_starry_night.png

test: $(VENV)/.installed
	$(BIN)/python -m pytest

lint: $(VENV)/.installed   # ruff (lint, import order, formatting) and mypy, configured in pyproject.toml
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

gallery: $(VENV)/.installed
	$(BIN)/python scripts/gallery.py

bench: $(VENV)/.installed
	$(BIN)/python scripts/benchmark.py

web: $(VENV)/.installed   # the studio page on http://127.0.0.1:7860 (Ctrl-C to stop)
	$(BIN)/impasto web
