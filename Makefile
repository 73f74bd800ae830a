# Thin wrappers around scripts/run.py, which needs only Python and pip (no make required).
PYTHON ?= python3

.PHONY: demo test lint bench notebooks docs clean

demo test lint bench notebooks docs:
	$(PYTHON) scripts/run.py $@

clean:
	rm -rf .venv runs site build site-artifacts docs/lessons docs/api docs/assets/katex docs/curriculum.md
