"""`fromscratch lessons ...`: the listing follows the lesson files; `check` runs a learner's
lesson and reports each exercise's verdict; `open` never overwrites a learner's notebook."""

import shutil
from pathlib import Path

import pytest

from fromscratch.cli import main
from fromscratch.exercises import solution_source
from fromscratch.lessons import CURRICULUM, LESSONS_DIR_ENV, find_lessons

ROOT = Path(__file__).resolve().parents[1]

# A learner's lesson 02 in progress: softmax right, the causal mask inverted, attention not
# written, and a later cell that fails because of it.
LEARNER_LESSON = '''# %% [markdown]
# # Lesson 02 — Attention, as a learner left it

# %%
import torch

from fromscratch.exercises import check, exercise


# %%
@exercise("softmax")
def softmax(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


check("softmax", softmax)


# %%
@exercise("causal_mask")
def my_causal_mask(T):
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


check("causal_mask", my_causal_mask)


# %%
@exercise("attention")
def attention(q, k, v, causal=False):
    raise NotImplementedError


check("attention", attention)

# %%
attention(torch.randn(1, 2, 4), torch.randn(1, 2, 4), torch.randn(1, 2, 4))
'''


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def learner_dir(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "02_attention.py").write_text(LEARNER_LESSON, encoding="utf-8")
    monkeypatch.setenv(LESSONS_DIR_ENV, str(folder))
    return folder


def test_list_shows_every_lesson_with_its_exercises_and_the_ones_to_come(capsys):
    lessons = find_lessons(ROOT / "notebooks")
    code, out, _ = run_cli(capsys, "lessons", "list")
    assert code == 0
    for lesson in lessons:
        assert f"{lesson.number:02d}  {lesson.title}" in out
        assert f"exercises: {', '.join(lesson.exercises)}" in out
    written = {lesson.number for lesson in lessons}
    coming = [topic for topic in CURRICULUM if topic.number not in written]
    for topic in coming:
        assert f"{topic.number:02d}  (coming) {topic.topic}" in out
    assert out.count("(coming)") == len(coming)


def test_check_reports_each_exercise_and_names_the_mistake(capsys, learner_dir):
    code, out, err = run_cli(capsys, "lessons", "check", "02")
    assert code == 2
    assert "✓ softmax: correct" in out
    assert "✗ causal_mask: inverted" in out
    assert "✗ attention: not written yet" in out
    assert "raised NotImplementedError" in out  # the last cell, which needs attention
    assert "1 of 3 exercises correct." in out
    assert err.strip() == "error: not correct yet: causal_mask, attention (see above)"


def test_check_one_exercise_by_its_name(capsys, learner_dir):
    code, out, _ = run_cli(capsys, "lessons", "check", "softmax")
    assert code == 0
    assert "✓ softmax: correct" in out and "causal_mask" not in out
    assert "1 of 1 exercises correct." in out


def test_check_an_unknown_lesson_is_one_line(capsys, learner_dir):
    code, out, err = run_cli(capsys, "lessons", "check", "99")
    assert code == 2
    assert err.count("\n") == 1 and "no lesson named '99'" in err and "02_attention" in err


def test_open_without_jupyter_prints_the_notebook_and_keeps_the_learners_work(
    capsys, learner_dir, monkeypatch
):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no Jupyter on this machine
    code, out, _ = run_cli(capsys, "lessons", "open", "attention")
    notebook = learner_dir / "02_attention.ipynb"
    assert code == 0
    assert str(notebook) in out and "Jupyter is not installed" in out
    assert '"cell_type": "code"' in notebook.read_text()

    notebook.write_text("the learner's own work")
    run_cli(capsys, "lessons", "open", "02")
    assert notebook.read_text() == "the learner's own work"


def test_solution_prints_the_reference(capsys):
    code, out, _ = run_cli(capsys, "lessons", "solution", "softmax")
    assert code == 0
    assert out.strip() == solution_source("softmax").strip()
    assert "def " in out
