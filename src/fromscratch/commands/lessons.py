"""`fromscratch lessons list|open|check|solution`: the lessons and their exercises.

    fromscratch lessons list                the lessons: number, title, exercises; those to come
    fromscratch lessons open 02             start Jupyter on lesson 02 (or print where it is)
    fromscratch lessons check 02 [--full]   run lesson 02 as you wrote it: each exercise's verdict
    fromscratch lessons check softmax       the same, reporting one exercise
    fromscratch lessons solution softmax    print an exercise's reference solution

A lesson is named by its number (`2`, `02`), its file name (`02_attention`) or its topic
(`attention`); `check` also takes an exercise's name and then runs the lesson that holds it.
"""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from fromscratch.commands.common import positive_int
from fromscratch.errors import UserError

VERDICT = re.compile(r"^([✓✗]) (\w+):")


def cmd_lessons_list(args) -> None:
    from fromscratch.lessons import CURRICULUM, find_lessons

    lessons = {lesson.number: lesson for lesson in find_lessons()}
    numbers = sorted({topic.number for topic in CURRICULUM} | set(lessons))
    topics = {topic.number: topic.topic for topic in CURRICULUM}
    for number in numbers:
        lesson = lessons.get(number)
        if lesson is None:
            print(f"{number:02d}  (coming) {topics[number]}")
        else:
            exercises = ", ".join(lesson.exercises) or "none"
            print(f"{number:02d}  {lesson.title}\n    {lesson.path}\n    exercises: {exercises}")


def notebook_for(lesson) -> Path | None:
    """The lesson's .ipynb beside its .py, made with jupytext if missing (never overwritten)."""
    notebook = lesson.path.with_suffix(".ipynb")
    if not notebook.exists():
        try:
            import jupytext
        except ImportError:
            return None
        jupytext.write(jupytext.read(lesson.path), notebook)
    return notebook


def cmd_lessons_open(args) -> None:
    from fromscratch.lessons import find_lesson

    lesson = find_lesson(args.name)
    notebook = notebook_for(lesson)
    jupyter = shutil.which("jupyter-lab") or shutil.which("jupyter-notebook")
    if notebook is not None and jupyter is not None:
        print(f"opening {notebook} in {Path(jupyter).name} (Ctrl-C here to stop it)")
        subprocess.run([jupyter, str(notebook)], check=False)
        return
    print(f"lesson {lesson.name}: {notebook or lesson.path}")
    print("Jupyter is not installed here: open that file in VS Code, or run "
          "pip install jupyterlab 'fromscratch[lessons]' and try again.")


def lesson_to_check(name: str):
    """The lesson called `name`, or the lesson holding exercise `name` (then also that name)."""
    from fromscratch.exercises import list_exercises
    from fromscratch.exercises.checking import get_exercise
    from fromscratch.lessons import find_lesson

    if name in list_exercises():
        return find_lesson(get_exercise(name).lesson), name
    return find_lesson(name), None


def verdicts(notebook) -> tuple[dict[str, str], list[str]]:
    """What a run printed: each exercise's verdict (with its hint lines), and the cells' errors."""
    found, errors = {}, []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "error":
                first_line = cell.source.strip().split("\n")[0]
                errors.append(f"cell {index} ({first_line}) raised {output.ename}: {output.evalue}")
            elif output.output_type == "stream":
                current = None
                for line in output.text.splitlines():
                    match = VERDICT.match(line)
                    if match:
                        current = match.group(2)
                        found[current] = line
                    elif current and line.startswith("  "):
                        found[current] += "\n" + line
    return found, errors


def cmd_lessons_check(args) -> None:
    from fromscratch.lessons import run_lesson

    lesson, only = lesson_to_check(args.name)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"no file {path}: give the lesson file you worked in (.py or .ipynb)")
    else:
        notebook_path = lesson.path.with_suffix(".ipynb")
        path = notebook_path if notebook_path.exists() else lesson.path
    mode = "full" if args.full else "fast"
    print(f"running {path} ({mode} mode) ...", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"{lesson.name}-") as workdir:
        notebook = run_lesson(
            path, Path(workdir), fast=not args.full, solutions=False, allow_errors=True,
            timeout_s=args.timeout,
        )
    found, errors = verdicts(notebook)
    expected = [only] if only else list(lesson.exercises)
    missing = []
    for name in expected:
        if name in found:
            print(found[name])
        else:
            missing.append(name)
            print(f"? {name}: not checked: the lesson has no `check({name!r}, ...)` that ran")
    for error in errors:
        print(error)
    wrong = [name for name in expected if not found.get(name, "").startswith("✓")]
    print(f"{len(expected) - len(wrong)} of {len(expected)} exercises correct.")
    if wrong:
        raise UserError(f"not correct yet: {', '.join(wrong)} (see above)")


def cmd_lessons_solution(args) -> None:
    from fromscratch.exercises import solution_source

    print(solution_source(args.name))


def register(commands) -> None:
    lessons = commands.add_parser("lessons", help="the lessons, their exercises and solutions")
    verbs = lessons.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("list", help="the lessons (number, title, exercises) and those to come")
    p.set_defaults(func=cmd_lessons_list)
    p = verbs.add_parser("open", help="start Jupyter on a lesson, or print where its file is")
    p.add_argument("name", help="a lesson's number, file name or topic, e.g. 02 or attention")
    p.set_defaults(func=cmd_lessons_open)
    p = verbs.add_parser("check", help="run a lesson as you wrote it and report its exercises")
    p.add_argument("name", help="a lesson (02, attention) or one exercise's name (softmax)")
    p.add_argument("--file", help="the lesson file to run (default: its .ipynb if any, else .py)")
    p.add_argument("--full", action="store_true", help="full mode instead of fast (slower)")
    p.add_argument("--timeout", type=positive_int, default=600, help="seconds allowed per cell")
    p.set_defaults(func=cmd_lessons_check)
    p = verbs.add_parser("solution", help="print the reference solution of an exercise")
    p.add_argument("name")
    p.set_defaults(func=cmd_lessons_solution)
