# Thin wrappers. Everything runs inside a project-local virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test lint bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/fromscratch gpt train --data pydoc --preset demo --max-time 60 --out runs/demo
	$(BIN)/fromscratch gpt sample --ckpt runs/demo --prompt "The " --max-new-tokens 300

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/python -m pytest -n 2 -q

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bpe_train.py
	$(BIN)/python benchmarks/gpt_shakespeare.py

clean:
	rm -rf $(VENV) runs site build
