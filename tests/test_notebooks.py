"""Every lesson runs top to bottom, in fast mode, with the exercises filled by the reference.

Each notebooks/NN_*.py (jupytext percent format) is converted to a notebook and executed by a
Jupyter kernel in a temporary folder, with FROMSCRATCH_FAST=1 and FROMSCRATCH_SOLUTIONS=1.
A lesson passes when no cell raises (every lesson proves its pieces with asserts) and every
`check(...)` printed "correct".
"""

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 120


def test_the_five_gpt_lessons_are_there():
    names = [path.stem for path in NOTEBOOKS]
    for lesson in ["01_tokenization", "02_attention", "03_gpt", "04_training", "05_generation"]:
        assert lesson in names


def printed_text(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_lesson_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("FROMSCRATCH_FAST", "1")
    monkeypatch.setenv("FROMSCRATCH_SOLUTIONS", "1")
    monkeypatch.setenv("FROMSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # Two lessons run at once under pytest -n 2 on two cores: one thread each avoids contention.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    client.execute()  # raises CellExecutionError, with the failing cell, if any cell fails

    checks_called = sum(
        len(re.findall(r"^check\(", cell.source, flags=re.MULTILINE))
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    text = printed_text(notebook)
    assert checks_called >= 1, "every lesson has at least one exercise"
    assert text.count("✓ ") == checks_called, text
    assert "✗ " not in text, text
