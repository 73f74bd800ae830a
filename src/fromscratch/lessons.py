"""The lessons: the curriculum, the lesson files present, and running a lesson top to bottom.

A lesson is one file `notebooks/NN_topic.py` in jupytext's percent format (`# %%` starts a code
cell, `# %% [markdown]` a text cell). Its first heading is its title, and its exercises are the
names in its `@exercise("name")` lines. `CURRICULUM` is the plan: every topic with its lesson
number, so an index can list the lessons present and mark the rest as coming.

Running a lesson needs the `lessons` extra (jupytext, nbclient, ipykernel):

    notebook = run_lesson(find_lesson("02"), workdir, fast=True, solutions=True)

`run_lesson_cached` keeps the executed notebook in a folder, keyed by the lesson's text and the
library's source, so the tests and the docs build share one run of each lesson version.

A lesson whose data is neither on this machine nor downloadable stops at the cell that loads it
(the cell raises `fromscratch.data.DataUnavailable`): the run is returned as far as it went, with
the reason in `notebook.metadata[DATA_UNAVAILABLE]`, and is not kept, so the next run tries again.
"""

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fromscratch.errors import UserError

DATA_UNAVAILABLE = "fromscratch_data_unavailable"  # metadata of a run its data stopped
FAST_ENV = "FROMSCRATCH_FAST"  # "1": tiny models and data, seconds per lesson (CI)
LESSONS_DIR_ENV = "FROMSCRATCH_LESSONS_DIR"  # where the lesson files are, if not ./notebooks
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Topic:
    """One planned lesson: its number, the part of the course it belongs to, and its subject."""

    number: int
    part: str
    topic: str


LANGUAGE, MODERN, BEYOND, DIFFUSION, STABLE, SCALE = (
    "Language models",
    "Modern LLMs",
    "Beyond language",
    "The mathematics of diffusion",
    "Stable Diffusion, piece by piece",
    "Scale and science",
)

# In the order to take them; a lesson's number is its file's, so 24 and 25 (Modern LLMs) come
# right after the Language models they build on.
CURRICULUM = (
    Topic(1, LANGUAGE, "tokenization"),
    Topic(2, LANGUAGE, "attention and einsum"),
    Topic(3, LANGUAGE, "the transformer"),
    Topic(4, LANGUAGE, "training a language model"),
    Topic(5, LANGUAGE, "generation"),
    Topic(6, LANGUAGE, "pretrained models and fine-tuning (BERT)"),
    Topic(24, MODERN, "from GPT-2 to a modern decoder"),
    Topic(25, MODERN, "a real chat model in your own code"),
    Topic(7, BEYOND, "vision transformer"),
    Topic(8, BEYOND, "generating images token by token"),
    Topic(9, BEYOND, "arithmetic"),
    Topic(10, BEYOND, "audio"),
    Topic(11, BEYOND, "music"),
    Topic(12, DIFFUSION, "forward diffusion and SDEs"),
    Topic(13, DIFFUSION, "the score function"),
    Topic(14, DIFFUSION, "reversing diffusion"),
    Topic(15, DIFFUSION, "score matching"),
    Topic(16, DIFFUSION, "samplers compared"),
    Topic(17, DIFFUSION, "likelihood and flow matching"),
    Topic(18, STABLE, "the UNet"),
    Topic(19, STABLE, "cross-attention and text encoders"),
    Topic(20, STABLE, "latent space (the VAE)"),
    Topic(21, STABLE, "guidance and text-to-image"),
    Topic(22, SCALE, "training at scale"),
    Topic(23, SCALE, "neuroscience"),
)


@dataclass(frozen=True)
class Lesson:
    """A lesson file present on disk."""

    number: int
    name: str  # the file's stem, e.g. "02_attention"
    path: Path
    title: str  # its first heading, without the "Lesson NN —" prefix
    goal: str  # the first sentence after **Goal.**, or ""
    exercises: tuple[str, ...]


def lessons_dir() -> Path:
    """The folder of lesson files: $FROMSCRATCH_LESSONS_DIR, ./notebooks, or the repository's."""
    if os.environ.get(LESSONS_DIR_ENV):
        return Path(os.environ[LESSONS_DIR_ENV])
    for candidate in (Path.cwd() / "notebooks", PACKAGE_DIR.parents[1] / "notebooks"):
        if any(candidate.glob("[0-9][0-9]_*.py")):
            return candidate
    raise UserError(
        "no lessons found: run this from the repository's folder (the one holding notebooks/) "
        f"or set {LESSONS_DIR_ENV}"
    )


def read_lesson(path: Path) -> Lesson:
    """Title, goal and exercises of the lesson file at `path`, read from its text."""
    text = Path(path).read_text(encoding="utf-8")
    heading = re.search(r"^# # (.+)$", text, flags=re.MULTILINE)
    title = heading.group(1).strip() if heading else path.stem[3:].replace("_", " ")
    title = re.sub(r"^Lesson\s+\d+\s*[—:.-]+\s*", "", title)
    goal = re.search(r"\*\*Goal\.\*\*\s*((?:.|\n# )+?[.!?])(?:\s|$)", text)
    exercises = re.findall(r"""^@exercise\(\s*["']([^"']+)["']""", text, flags=re.MULTILINE)
    return Lesson(
        number=int(path.name[:2]),
        name=path.stem,
        path=Path(path),
        title=title,
        goal=re.sub(r"\s*\n#\s*", " ", goal.group(1)) if goal else "",
        exercises=tuple(dict.fromkeys(exercises)),
    )


def find_lessons(folder: Path | None = None) -> list[Lesson]:
    """Every lesson file `NN_*.py` in `folder` (default: `lessons_dir()`), by number."""
    folder = lessons_dir() if folder is None else Path(folder)
    return [read_lesson(p) for p in sorted(folder.glob("[0-9][0-9]_*.py"))]


def find_lesson(name: str, folder: Path | None = None) -> Lesson:
    """The lesson called `name`: its number ("2", "02"), its file stem, or the part after NN_."""
    lessons = find_lessons(folder)
    for lesson in lessons:
        by_number = name.isdigit() and int(name) == lesson.number
        if by_number or name in (lesson.name, lesson.name[3:]):
            return lesson
    known = ", ".join(lesson.name for lesson in lessons)
    raise UserError(f"no lesson named {name!r}; the lessons are: {known}")


def run_lesson(
    path: Path, workdir: Path, *, fast: bool = True, solutions: bool = False,
    timeout_s: int = 600, allow_errors: bool = False, env: dict | None = None,
):
    """Execute the lesson at `path` (a .py or .ipynb) in a Jupyter kernel; return the notebook.

    The kernel runs in `workdir` with FROMSCRATCH_FAST and FROMSCRATCH_SOLUTIONS set from `fast`
    and `solutions`, and figures captured as PNG outputs. A failing cell raises nbclient's
    CellExecutionError (naming the cell) unless `allow_errors`, which records the error as the
    cell's output and goes on. A cell that raises DataUnavailable ends the run without raising:
    the notebook as far as it ran, its message in `notebook.metadata[DATA_UNAVAILABLE]`.
    """
    try:
        import jupytext
        import nbclient
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        raise UserError(
            "running a lesson needs Jupyter's pieces: pip install 'fromscratch[lessons]'"
        ) from None
    from fromscratch.data import DataUnavailable
    from fromscratch.exercises import SOLUTIONS_ENV

    kernel_env = {
        **os.environ,
        FAST_ENV: "1" if fast else "0",
        SOLUTIONS_ENV: "1" if solutions else "0",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        **(env or {}),
    }
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(workdir)}},  # the kernel's working folder
    )
    try:
        client.execute(env=kernel_env)  # fills `notebook`'s outputs cell by cell
    except CellExecutionError as err:
        if err.ename != DataUnavailable.__name__:
            raise
        notebook.metadata[DATA_UNAVAILABLE] = err.evalue
    return notebook


def source_digest(path: Path, **settings) -> str:
    """A key for one run of a lesson: its text, every library source file, and `settings`."""
    digest = hashlib.sha256(Path(path).read_bytes())
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(source.relative_to(PACKAGE_DIR)).encode())
        digest.update(source.read_bytes())
    digest.update(repr(sorted(settings.items())).encode())
    return digest.hexdigest()


@contextmanager
def _exclusive(lock_path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on `lock_path` (yields False if `wait` is off and it is taken)."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): every process runs its own lessons
        yield True
        return
    with open(lock_path, "a") as handle:
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_lesson_cached(
    path: Path, cache_dir: Path, *, wait: bool = True, fast: bool = True,
    solutions: bool = True, reuse_stale: bool = False, **run_kwargs,
):
    """`run_lesson`, reusing the notebook of an earlier run with the same `source_digest`.

    Processes sharing `cache_dir` run each lesson once: one runs it while the others wait for
    its result. With `wait=False`, returns None at once if another process is running it.
    `reuse_stale` takes any earlier run, even of an older version (for editing the docs' prose).
    A run stopped for want of data is returned but not kept; its reason names the lesson's
    download cache as ~/.cache/fromscratch, the folder a reader's own run uses.
    """
    import nbformat

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    key = source_digest(path, fast=fast, solutions=solutions)
    notebook_path, key_path = cache_dir / f"{stem}.ipynb", cache_dir / f"{stem}.key"
    with _exclusive(cache_dir / f"{stem}.lock", wait) as locked:
        if not locked:
            return None
        fresh = key_path.exists() and key_path.read_text() == key
        if notebook_path.exists() and (fresh or reuse_stale):
            return nbformat.read(notebook_path, as_version=4)
        env = run_kwargs.pop("env", {})
        with tempfile.TemporaryDirectory(prefix=f"{stem}-") as workdir:
            downloads = str(Path(workdir) / "cache")
            env = {"FROMSCRATCH_CACHE": downloads, **env}
            notebook = run_lesson(
                path, Path(workdir), fast=fast, solutions=solutions, env=env, **run_kwargs
            )
        if DATA_UNAVAILABLE in notebook.metadata:
            reason = notebook.metadata[DATA_UNAVAILABLE].replace(downloads, "~/.cache/fromscratch")
            notebook.metadata[DATA_UNAVAILABLE] = reason
            return notebook
        partial = notebook_path.with_suffix(".ipynb.partial")
        nbformat.write(notebook, partial)
        partial.replace(notebook_path)
        key_path.write_text(key)
        return notebook
