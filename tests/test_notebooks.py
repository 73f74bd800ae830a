"""Every lesson runs top to bottom, in fast mode, with the exercises filled by the reference.

Each notebooks/NN_*.py (jupytext percent format) is executed by a Jupyter kernel in a temporary
folder, with FROMSCRATCH_FAST=1 and FROMSCRATCH_SOLUTIONS=1 (`fromscratch.lessons.run_lesson`).
A lesson passes when no cell raises (every lesson proves its pieces with asserts) and every
`check(...)` printed "correct". The executed notebook is kept in build/executed-lessons/ for the
docs build (tests/test_docs_site.py), which reuses it while the lesson and library are unchanged.
A lesson whose data this machine neither has nor can download is skipped, saying which data and
how to get it, once the cells before the one that loads it have passed.
"""

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from fromscratch.data import DATA_ENV  # noqa: E402
from fromscratch.lessons import (  # noqa: E402
    CURRICULUM,
    DATA_UNAVAILABLE,
    find_lessons,
    run_lesson_cached,
)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = find_lessons(ROOT / "notebooks")
EXECUTED = ROOT / "build" / "executed-lessons"
CELL_TIMEOUT_S = 120


def test_the_five_gpt_lessons_are_there():
    names = [lesson.name for lesson in LESSONS]
    for lesson in ["01_tokenization", "02_attention", "03_gpt", "04_training", "05_generation"]:
        assert lesson in names


def test_every_lesson_has_a_number_in_the_curriculum_and_a_title():
    planned = {topic.number for topic in CURRICULUM}
    for lesson in LESSONS:
        assert lesson.number in planned, f"{lesson.name}: add its topic to lessons.CURRICULUM"
        assert lesson.title and not lesson.title.startswith("Lesson"), lesson.name
    assert len({lesson.number for lesson in LESSONS}) == len(LESSONS), "two lessons, one number"


def test_the_readme_links_only_lessons_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((notebooks/[^)]+)\)", readme)
    assert links, "the README's curriculum links the lessons"
    for link in links:
        assert (ROOT / link).is_file(), f"README.md links {link}, which does not exist"


def printed_text(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def shown_text(notebook) -> str:
    """Everything a reader of the executed lesson sees as text: printed, displayed, returned."""
    data = [
        output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    return printed_text(notebook) + "".join(data)


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.name for lesson in LESSONS])
def test_lesson_runs_top_to_bottom(lesson):
    # Two lessons run at once under pytest -n 2 on two cores: one thread each avoids contention.
    notebook = run_lesson_cached(
        lesson.path, EXECUTED, timeout_s=CELL_TIMEOUT_S, env={"OMP_NUM_THREADS": "1"}
    )  # raises CellExecutionError, with the failing cell, if any cell fails

    checks_called = sum(
        len(re.findall(r"^check\(", cell.source, flags=re.MULTILINE))
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    text = printed_text(notebook)
    for place in (ROOT, Path(sys.prefix), Path.home()):  # this machine's folders stay private
        assert str(place) not in shown_text(notebook), f"the lesson shows the path {place}"
    assert "✗ " not in text, text
    if DATA_UNAVAILABLE in notebook.metadata:
        pytest.skip(f"{lesson.name} needs data that is not on this machine and could not be "
                    f"downloaded ({notebook.metadata[DATA_UNAVAILABLE]}); connect to the "
                    f"internet, or set {DATA_ENV} to a folder holding a copy")
    assert lesson.exercises, "every lesson has at least one @exercise"
    assert checks_called >= len(lesson.exercises), "every exercise is checked"
    assert text.count("✓ ") == checks_called, text
