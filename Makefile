# Thin wrappers around scripts/run.py, which needs only Python and pip (no make required).
PYTHON ?= python3

.PHONY: demo test lint bench notebooks clean

demo test lint bench notebooks:
	$(PYTHON) scripts/run.py $@

clean:
	rm -rf .venv runs site build
