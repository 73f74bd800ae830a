"""Self-checking exercises for the lessons.

In a lesson you write a function whose body says `TODO`, then run

    check("attention", attention)

which calls your function and the reference solution on the same fresh random inputs (several
shapes, edge cases such as a single token or masked rows) and prints either "correct" or what is
wrong: a wrong shape (expected vs got), a missing 1/√D scale, a transpose, an inverted mask,
softmax over the wrong axis, a NaN... Each track keeps its checks in `<track>_exercises.py` and
its reference solutions in `<track>_solutions.py`; read one with `solution_source(name)` (or
`fromscratch lessons solution NAME`) once you have tried.

`@exercise(name)` above your function does nothing, unless the environment variable
FROMSCRATCH_SOLUTIONS=1 is set (as in CI): then it swaps in the reference solution so that a
lesson with unsolved exercises still runs top to bottom.
"""

import importlib
import inspect
import pkgutil

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


def _register_every_track() -> None:
    """Import each `<track>_exercises` module: importing one registers its exercises."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.endswith("_exercises"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_every_track()


def prompt(name: str) -> str:
    """What exercise `name` asks for: its signature and a one-paragraph spec."""
    return get_exercise(name).prompt


def solution_source(name: str) -> str:
    """The source code of the reference solution of exercise `name`."""
    return inspect.getsource(get_exercise(name).reference)
