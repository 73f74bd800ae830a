"""The machinery behind `check(name, fn)`: run a learner's function, compare, diagnose.

An `Exercise` bundles a prompt, a reference solution, a generator of test cases (fresh random
inputs in several shapes, plus edge cases such as T = 1) and a list of `Mistake`s. A mistake is a
common wrong answer written as code: `wrong(*args)` computes what that mistake would return, so
when the learner's output equals it we can name the mistake instead of just saying "wrong".
An exercise whose answer shows only after many calls (a training step) has a `run`: the output
compared is then run(fn, *args), e.g. the weights after fn has made several steps.

Diagnosis order, on the first case where the learner's output differs from the reference:
the exercise's own mistakes, then generic ones (wrong type, wrong shape, wrong dtype, NaN or inf,
off by a transpose, off by a constant factor), then the largest difference as a last resort.
"""

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fromscratch.errors import UserError

SOLUTIONS_ENV = "FROMSCRATCH_SOLUTIONS"  # "1": `@exercise` swaps in the reference solution

RTOL, ATOL = 1e-4, 1e-5  # float32 answers computed in a different order still agree to this


@dataclass(frozen=True, eq=False)
class Case:
    """One input to test: `fn(*args)`, described by `label` in messages."""

    args: tuple
    label: str


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer: `wrong(*args)` reproduces it; `hint` says how to fix it."""

    key: str
    hint: str
    wrong: Callable


@dataclass(frozen=True)
class Exercise:
    """What the learner writes (`prompt`), the answer (`reference`) and how to test it."""

    name: str
    lesson: str
    prompt: str
    reference: Callable
    make_cases: Callable[[torch.Generator], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    nan_hint: str = "your output has NaN or inf where the answer is finite."
    error_hints: tuple[tuple[str, str], ...] = ()  # (text in the exception message, hint)
    run: Callable | None = None  # run(fn, *args) -> the output to compare; None: fn(*args)

    def output(self, fn: Callable, args: tuple):
        """What `fn` gives on a case's args: fn(*args), or run(fn, *args)."""
        return fn(*args) if self.run is None else self.run(fn, *args)


@dataclass(frozen=True)
class Raised:
    """Stands for the output of a call that raised `error`."""

    error: Exception


@dataclass(frozen=True)
class CheckResult:
    """The verdict of `check`: `ok`, the printed `message`, and a short `diagnosis` key."""

    name: str
    ok: bool
    message: str
    diagnosis: str = field(default="correct")

    def __bool__(self) -> bool:
        return self.ok

    def _ipython_display_(self) -> None:
        """`check` already printed the message: show nothing more in a notebook."""


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    REGISTRY[exercise.name] = exercise
    return exercise


def get_exercise(name: str) -> Exercise:
    if name not in REGISTRY:
        raise UserError(f"no exercise named {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def list_exercises() -> list[str]:
    """Names of all exercises, in the order the lessons meet them.

    Lessons are named `NN_topic`, so sorting by lesson name orders them by number; within a
    lesson, exercises keep the order they were registered in.
    """
    return sorted(REGISTRY, key=lambda name: REGISTRY[name].lesson)


def exercise(name: str) -> Callable[[Callable], Callable]:
    """Decorator for a learner's exercise function, a no-op unless FROMSCRATCH_SOLUTIONS=1.

    With that environment variable set (CI does), the decorated function is replaced by the
    reference solution, so a lesson whose exercises still say `raise NotImplementedError` runs
    top to bottom.
    """
    reference = get_exercise(name).reference

    def decorate(fn: Callable) -> Callable:
        return reference if os.environ.get(SOLUTIONS_ENV) == "1" else fn

    return decorate


def check(name: str, fn: Callable, *, seed: int | None = None) -> CheckResult:
    """Run `fn` and the reference solution of exercise `name` on the same inputs; print the verdict.

    seed: fixes the random inputs (default: fresh ones on every call).
    Returns a `CheckResult` (truthy when correct).
    """
    ex = get_exercise(name)
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    cases = ex.make_cases(torch.Generator().manual_seed(seed))

    outcomes = []  # (case, got, expected) for every case; got is Raised(...) if fn raised
    for case in cases:
        expected = ex.output(ex.reference, copy.deepcopy(case.args))
        learner_args = copy.deepcopy(case.args)
        try:
            got = ex.output(fn, learner_args)
        except NotImplementedError:
            return _verdict(
                ex,
                False,
                "not_implemented",
                "not written yet: replace `raise NotImplementedError` with your code.",
            )
        except Exception as err:  # the learner's bug: reported as a hint, never re-raised
            got = Raised(err)
        if not _same(learner_args, case.args):
            return _verdict(
                ex,
                False,
                "mutated_input",
                "your function changed its input in place (e.g. `x -= ...`, `masked_fill_`): "
                f"work on a new tensor or list instead.\n  case: {case.label}",
            )
        outcomes.append((case, got, expected))

    failures = [(c, got, expected) for c, got, expected in outcomes if not _same(got, expected)]
    if not failures:
        return _verdict(ex, True, "correct", f"correct on all {len(cases)} test inputs.")
    errors = [(c, got.error) for c, got, _ in failures if isinstance(got, Raised)]
    also_raised = ""
    if errors:
        case, error = errors[0]
        also_raised = f"\n  it also raised {type(error).__name__} on: {case.label}"

    mistake, case = _likeliest_mistake(ex, outcomes, failures)
    if mistake is not None:
        return _verdict(
            ex, False, mistake.key, f"{mistake.hint}\n  case: {case.label}{also_raised}"
        )
    if errors:
        case, error = errors[0]
        return _verdict(ex, False, "error", _error_message(ex, error, case))
    case, got, expected = failures[0]
    key, hint = _diagnose(ex, got, expected)
    return _verdict(ex, False, key, f"{hint}\n  case: {case.label}")


def _verdict(ex: Exercise, ok: bool, key: str, text: str) -> CheckResult:
    mark = "✓" if ok else "✗"
    result = CheckResult(ex.name, ok, f"{mark} {ex.name}: {text}", key)
    print(result.message)
    return result


def _error_message(ex: Exercise, err: Exception, case: Case) -> str:
    text = f"your function raised {type(err).__name__}: {err}"
    for fragment, hint in ex.error_hints + _GENERIC_ERROR_HINTS:
        if fragment in str(err):
            return f"{text}\n  hint: {hint}\n  case: {case.label}"
    return f"{text}\n  case: {case.label}"


_MATMUL_HINT = (
    "a matrix product with mismatched shapes: A @ B needs A's last axis to equal B's "
    "second-to-last; use .transpose(-2, -1) on the right tensor."
)
_GENERIC_ERROR_HINTS = (
    (
        "must match the size",
        "a broadcasting error: did you forget keepdim=True when reducing over an axis, "
        "or transpose the wrong axes?",
    ),
    ("cannot be multiplied", _MATMUL_HINT),
    ("batch2 tensor", _MATMUL_HINT),
)


def _same(got, expected) -> bool:
    """Equal up to float tolerance: tensors (same shape and dtype kind), lists, tuples, numbers."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False
        if expected.dtype == torch.bool or got.dtype == torch.bool:
            return got.dtype == expected.dtype and torch.equal(got, expected)
        if got.is_floating_point() != expected.is_floating_point():
            return False
        return torch.allclose(got.double(), expected.double(), rtol=RTOL, atol=ATOL, equal_nan=True)
    if isinstance(expected, (list, tuple)):
        return (
            type(got) is type(expected)
            and len(got) == len(expected)
            and all(_same(g, e) for g, e in zip(got, expected, strict=True))
        )
    return type(got) is type(expected) and got == expected


def _likeliest_mistake(ex: Exercise, outcomes: list, failures: list) -> tuple[Mistake | None, Case]:
    """The known mistake that reproduces the learner's output on the most cases, if any does.

    It must reproduce at least one failing case where the learner's function returned; it comes
    back with the first such case. Counting all cases (errors included: a mistake may raise
    where the learner's function raised) tells apart mistakes that coincide on some inputs:
    with T = 1, a causal mask without its diagonal is also an inverted mask.
    """
    best, best_count, best_case = None, 0, failures[0][0]
    for mistake in ex.mistakes:
        reproduced = [case for case, got, _ in outcomes if _reproduces(ex, mistake, case, got)]
        failing = [
            case
            for case, got, _ in failures
            if not isinstance(got, Raised) and any(case is r for r in reproduced)
        ]
        if failing and len(reproduced) > best_count:
            best, best_count, best_case = mistake, len(reproduced), failing[0]
    return best, best_case


def _reproduces(ex: Exercise, mistake: Mistake, case: Case, got) -> bool:
    """Does making `mistake` on `case` give `got` (or raise the same kind of error)?"""
    try:
        wrong = ex.output(mistake.wrong, copy.deepcopy(case.args))
    except Exception as err:
        return isinstance(got, Raised) and type(got.error) is type(err)
    return not isinstance(got, Raised) and _same(got, wrong)


def _diagnose(ex: Exercise, got, expected) -> tuple[str, str]:
    """(key, hint) for an output that no known mistake explains: type, shape, NaN, scale..."""
    if isinstance(expected, torch.Tensor):
        return _diagnose_tensor(ex, got, expected)
    if type(got) is not type(expected):
        return "type", f"return a {type(expected).__name__}, not a {type(got).__name__}."
    return "values", f"expected {_short(expected)}, got {_short(got)}."


def _diagnose_tensor(ex: Exercise, got, expected: torch.Tensor) -> tuple[str, str]:
    if not isinstance(got, torch.Tensor):
        return "type", f"return a torch.Tensor, not a {type(got).__name__}."
    if got.shape != expected.shape:
        hint = f"wrong shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}."
        if got.dim() >= 2 and got.mT.shape == expected.shape:
            hint += " That is the right shape transposed: check which axes you swapped."
        return "shape", hint
    if got.dtype != expected.dtype:
        if _same(got.to(expected.dtype), expected):
            return "dtype", f"right values, but return dtype {expected.dtype}, not {got.dtype}."
        if expected.dtype == torch.bool or got.dtype == torch.bool:
            return "dtype", f"return dtype {expected.dtype}, not {got.dtype}."
    if got.is_floating_point() and expected.is_floating_point():
        got, expected = got.double(), expected.double()
        got_bad = ~torch.isfinite(got) & torch.isfinite(expected)
        if got_bad.any():
            return "nan", ex.nan_hint
        if got.dim() >= 2 and _same(got.mT, expected):
            return "transpose", (
                "off by a transpose: your output is the answer with its last two axes swapped."
            )
        finite = torch.isfinite(expected)
        # Two single numbers always differ by some factor: only a pattern of many says "scale".
        factor = _constant_factor(got[finite], expected[finite]) if finite.sum() > 1 else None
        if factor is not None:
            return "factor", (
                f"off by a constant factor: your output is {factor:.4g} × the answer "
                "(a missing or extra scale, a sum instead of a mean?)."
            )
    if expected.numel() == 1:
        return "values", f"wrong value: expected {_item(expected)}, got {_item(got)}."
    difference = (got.double() - expected.double()).abs().nan_to_num(float("inf"))
    index = tuple(int(i) for i in torch.unravel_index(difference.argmax(), difference.shape))
    return "values", (
        f"wrong values: the largest difference is at index {index}: "
        f"expected {_item(expected[index])}, got {_item(got[index])}."
    )


def _item(t: torch.Tensor) -> str:
    value = t.item()
    return str(value) if isinstance(value, bool) else f"{value:.5g}"


def _constant_factor(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """c when got = c · expected (c ≠ 1, least squares fit), else None."""
    norm = (expected * expected).sum()
    if norm == 0:
        return None
    factor = float((got * expected).sum() / norm)
    if abs(factor - 1) < 1e-3:
        return None
    return factor if _same(got, factor * expected) else None


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
