"""Self-checking exercises for the lessons.

In a lesson you write a function whose body says `TODO`, then run

    check("attention", attention)

which calls your function and the reference solution on the same fresh random inputs (several
shapes, edge cases such as a single token or masked rows) and prints either "correct" or what is
wrong: a wrong shape (expected vs got), a missing 1/√D scale, a transpose, an inverted mask,
softmax over the wrong axis, a NaN...

One module per lesson, named after the lesson's file (notebooks/02_attention.py →
`l02_attention.py`), holds that lesson's exercises: each one's prompt, its test inputs and the
common mistakes it recognises. Beside it, `l02_attention_solutions.py` holds the reference
solutions, so that reading a lesson's checks gives none of its answers away; read one with
`solution_source(name)` (or `fromscratch lessons solution NAME`) once you have tried.

In a lesson's module, each `_*_cases(gen)` draws fresh random inputs plus the edge cases where
bugs hide, and each `Mistake` makes one common error on purpose: when your output equals it,
`check` prints that mistake's hint. `checking.py` is the machinery that runs a check and names
the mistake; `inputs.py` draws the random inputs that several lessons' cases share.

`@exercise(name)` above your function does nothing, unless the environment variable
FROMSCRATCH_SOLUTIONS=1 is set (as in CI): then it swaps in the reference solution so that a
lesson with unsolved exercises still runs top to bottom.
"""

import importlib
import inspect
import pkgutil
import re

from fromscratch.exercises.checking import (
    SOLUTIONS_ENV,
    CheckResult,
    check,
    exercise,
    get_exercise,
    list_exercises,
)

__all__ = [
    "SOLUTIONS_ENV",
    "CheckResult",
    "check",
    "exercise",
    "list_exercises",
    "prompt",
    "solution_source",
]


LESSON_MODULE = re.compile(r"l\d\d_\w+(?<!_solutions)")  # l02_attention, not its _solutions


def _register_every_lesson() -> None:
    """Import each lesson's module (`lNN_topic`): importing one registers its exercises."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if LESSON_MODULE.fullmatch(module.name):
            importlib.import_module(f"{__name__}.{module.name}")


_register_every_lesson()


def prompt(name: str) -> str:
    """What exercise `name` asks for: its signature and a one-paragraph spec."""
    return get_exercise(name).prompt


def solution_source(name: str) -> str:
    """The source code of the reference solution of exercise `name`."""
    return inspect.getsource(get_exercise(name).reference)
