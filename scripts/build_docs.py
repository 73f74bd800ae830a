#!/usr/bin/env python3
"""Build the documentation site, offline: `python scripts/build_docs.py [--serve] [--only 02 05]`.

Steps, each writing only into ignored folders:
1. KaTeX, from the npm package `katex` (installed once into build/npm), copied to docs/assets/katex.
2. Every lesson notebooks/NN_*.py executed in fast mode with the exercises filled by the reference
   (`fromscratch.lessons.run_lesson_cached`: a run made by the tests is reused while the lesson and
   the library are unchanged) and written as Markdown with its outputs and figures: docs/lessons/.
3. The curriculum page (the lessons present + the planned topics still to come): docs/curriculum.md.
4. One API page per module of src/fromscratch, rendered from docstrings by mkdocstrings: docs/api/.
5. `mkdocs build --strict` with a navigation listing all of it, into site/.

A lesson that fails to run stops the build with the failing cell. A lesson whose data this
machine neither has nor can download is shown as far as it ran, its page saying so at the top.
`--update-readme` rewrites the curriculum list between the markers in README.md instead of
building.
"""

import argparse
import base64
import logging
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fromscratch.lessons import (  # noqa: E402
    CURRICULUM,
    DATA_UNAVAILABLE,
    Lesson,
    find_lessons,
    run_lesson_cached,
)

DOCS = ROOT / "docs"
SITE = ROOT / "site"
EXECUTED = ROOT / "build" / "executed-lessons"  # shared with tests/test_notebooks.py
NPM_PREFIX = ROOT / "build" / "npm"
KATEX_VERSION = "0.16.47"
GENERATED = {
    "katex": DOCS / "assets" / "katex",
    "lessons": DOCS / "lessons",
    "curriculum": DOCS / "curriculum.md",
    "api": DOCS / "api",
}
API_SKIPPED = re.compile(  # the CLI's plumbing, the exercises' checkers and their answers
    r"^(__main__|cli|commands(\..*)?|exercises\..*_(exercises|solutions)|.*\._.*)$"
)
README_START, README_END = "<!-- curriculum:start -->", "<!-- curriculum:end -->"


# --- 1. KaTeX -------------------------------------------------------------------------------------

def vendor_katex() -> None:
    """Copy KaTeX's script, auto-render extension, style sheet and fonts into the docs."""
    dist = NPM_PREFIX / "node_modules" / "katex" / "dist"
    if not (dist / "katex.min.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("the docs need npm to fetch KaTeX: install it (Debian: apt-get install npm)")
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
             "--loglevel=error", f"katex@{KATEX_VERSION}"],
            check=True,
        )
    target = GENERATED["katex"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ["katex.min.js", "katex.min.css", "contrib/auto-render.min.js"]:
        shutil.copy(dist / name, target / Path(name).name)
    shutil.copytree(dist / "fonts", target / "fonts")


# --- 2. Lessons -----------------------------------------------------------------------------------

def run_lessons(lessons: list[Lesson], reuse_stale: bool = False) -> dict[str, object]:
    """The executed notebook of every lesson, taking first those no other process is running."""
    notebooks, waiting = {}, []
    for lesson in lessons:
        print(f"lesson {lesson.name}", flush=True)
        notebook = run_or_say_which(lesson, wait=False, reuse_stale=reuse_stale)
        if notebook is None:
            waiting.append(lesson)  # the test suite is running it right now: take its result
        else:
            notebooks[lesson.name] = notebook
    for lesson in waiting:
        notebooks[lesson.name] = run_or_say_which(lesson, reuse_stale=reuse_stale)
    return notebooks


def run_or_say_which(lesson: Lesson, **kwargs):
    from nbclient.exceptions import CellExecutionError

    try:
        return run_lesson_cached(lesson.path, EXECUTED, **kwargs)
    except CellExecutionError as err:
        message = f"lesson {lesson.path.name} fails, so the docs cannot show it:\n{err}"
        raise LessonFailed(message) from None


class LessonFailed(RuntimeError):
    """A lesson raised while it ran for the docs."""


def clean_stream(text: str) -> str:
    """Terminal text as it last looked: colours removed, each line's state after its last \\r."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    return "\n".join(line.rstrip("\r").split("\r")[-1] for line in text.split("\n"))


def fenced(text: str, language: str) -> str:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def output_block(text: str) -> str:
    return f'<div class="nb-output" markdown>\n\n{fenced(text, "text")}\n\n</div>'


def display_markdown(data: dict, figure: Path, link: str) -> str | None:
    """Markdown for one rich output (figure, HTML, LaTeX or text); None for widgets."""
    for mime, suffix in [("image/png", ".png"), ("image/jpeg", ".jpg"), ("image/gif", ".gif")]:
        if mime in data:
            figure.with_suffix(suffix).write_bytes(base64.b64decode(data[mime]))
            return f"![figure]({link}{suffix})"
    if "image/svg+xml" in data:
        figure.with_suffix(".svg").write_text(data["image/svg+xml"], encoding="utf-8")
        return f"![figure]({link}.svg)"
    if "text/markdown" in data:
        return data["text/markdown"]
    if "text/html" in data:
        return f'<div class="nb-output nb-html">\n{data["text/html"]}\n</div>'
    if "text/latex" in data:
        return data["text/latex"]
    if "application/vnd.jupyter.widget-view+json" in data:
        return None  # a live widget (e.g. a progress bar): nothing to show in a static page
    if "text/plain" in data:
        return output_block(data["text/plain"])
    return None


def separate_display_math(markdown: str) -> str:
    """Put a blank line around each `$$` block, which Markdown needs to see it as a block."""
    out, inside = [], False
    for line in markdown.split("\n"):
        stripped = line.strip()
        if not inside and stripped.startswith("$$"):
            if out and out[-1].strip():
                out.append("")
            out.append(line)
            if len(stripped) > 2 and stripped.endswith("$$"):
                out.append("")  # a one-line block
            else:
                inside = True
        elif inside and stripped.endswith("$$"):
            out += [line, ""]
            inside = False
        else:
            out.append(line)
    return "\n".join(out)


def lesson_markdown(lesson: Lesson, notebook, figures: Path) -> str:
    """The executed lesson as one Markdown page; figures are written into `figures`."""
    figures.mkdir(parents=True, exist_ok=True)
    note = (
        f'!!! info "This page is the lesson, run"\n'
        f"    Rendered from `notebooks/{lesson.path.name}` in fast mode (`FROMSCRATCH_FAST=1`: "
        f"small models and data), with the exercises filled in by their reference solutions. "
        f"Run it yourself with `fromscratch lessons open {lesson.number:02d}` and check your "
        f"answers with `fromscratch lessons check {lesson.number:02d}`."
    )
    if DATA_UNAVAILABLE in notebook.metadata:
        reason = textwrap.fill(notebook.metadata[DATA_UNAVAILABLE], 96, break_on_hyphens=False)
        note += (
            f'\n\n!!! warning "Run only as far as its data"\n'
            f"    This lesson needs data that was not available when this site was built, so "
            f"its outputs stop at the cell that loads it; the cells after it are shown without "
            f"theirs. Run it yourself with `fromscratch lessons open {lesson.number:02d}`: it "
            f"downloads the data on first use. What the build was told:\n\n"
            + textwrap.indent(fenced(reason, "text"), "    ")
        )
    parts = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            text = separate_display_math(cell.source)
            if index == 0 and text.startswith("# "):
                heading, _, rest = text.partition("\n")
                text = f"{heading}\n\n{note}\n{rest}"
            parts.append(text)
        elif cell.cell_type == "code" and cell.source.strip():
            parts.append(fenced(cell.source, "python"))
            stream = ""
            for number, output in enumerate(cell.get("outputs", [])):
                if output.output_type == "stream":
                    stream += output.text
                    continue
                if stream.strip():
                    parts.append(output_block(clean_stream(stream)))
                stream = ""
                if output.output_type in ("display_data", "execute_result"):
                    name = f"cell{index:03d}_{number}"
                    shown = display_markdown(
                        output.data, figures / name, f"{figures.name}/{name}"
                    )
                    if shown:
                        parts.append(shown)
            if stream.strip():
                parts.append(output_block(clean_stream(stream)))
    return "\n\n".join(parts) + "\n"


def write_lessons(lessons: list[Lesson], reuse_stale: bool = False) -> None:
    target = GENERATED["lessons"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    notebooks = run_lessons(lessons, reuse_stale)
    for lesson in lessons:
        notebook = notebooks[lesson.name]
        page = lesson_markdown(lesson, notebook, target / f"{lesson.name}_files")
        (target / f"{lesson.name}.md").write_text(page, encoding="utf-8")


# --- 3. Curriculum --------------------------------------------------------------------------------

def curriculum_table(lessons: list[Lesson], link) -> str:
    """The course in parts: a row per planned topic; `link(lesson)` gives a lesson's target."""
    present = {lesson.number: lesson for lesson in lessons}
    planned = {topic.number for topic in CURRICULUM}
    rows, part = [], None
    topics = list(CURRICULUM) + [lesson for lesson in lessons if lesson.number not in planned]
    for item in topics:
        item_part = getattr(item, "part", "More lessons")
        if item_part != part:
            part = item_part
            rows.append(f"\n**{part}**\n\n| # | lesson | topic | exercises |\n|---|---|---|---|")
        lesson = present.get(item.number)
        topic = getattr(item, "topic", "")
        if lesson is None:
            rows.append(f"| {item.number:02d} | *coming* | {topic} | |")
        else:
            exercises = ", ".join(f"`{name}`" for name in lesson.exercises)
            title = f"[{lesson.title}]({link(lesson)})"
            rows.append(f"| {lesson.number:02d} | {title} | {topic} | {exercises} |")
    return "\n".join(rows).strip() + "\n"


def write_curriculum(lessons: list[Lesson]) -> None:
    intro = (
        "# Curriculum\n\n"
        "The course, in the order to take it. Each lesson derives one piece, builds it in the "
        "open, proves it equal to a reference with an `assert`, and leaves exercises that check "
        "themselves; later lessons use the library for what earlier ones built. Lessons marked "
        "*coming* are planned and not written yet. How to run a lesson and its exercises: "
        "[Running the lessons](lessons.md).\n\n"
        f"{len(lessons)} of {len(CURRICULUM)} lessons are written.\n\n"
    )
    table = curriculum_table(lessons, lambda lesson: f"lessons/{lesson.name}.md")
    GENERATED["curriculum"].write_text(intro + table, encoding="utf-8")


def curriculum_lines(lessons: list[Lesson]) -> str:
    """The course in one line per part, each lesson linked to its file: for the README."""
    present = {lesson.number: lesson for lesson in lessons}
    parts: dict[str, list[str]] = {}
    for topic in CURRICULUM:
        lesson = present.get(topic.number)
        entry = (
            f"{topic.number:02d} [{lesson.title}](notebooks/{lesson.path.name})" if lesson
            else f"{topic.number:02d} {topic.topic} *(coming)*"
        )
        parts.setdefault(topic.part, []).append(entry)
    return "".join(f"- **{part}**: {' · '.join(entries)}\n" for part, entries in parts.items())


def update_readme(lessons: list[Lesson]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        sys.exit(f"README.md has no {README_START} ... {README_END} block to fill")
    table = curriculum_lines(lessons)
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_START}\n{table}{README_END}{tail}", encoding="utf-8")
    print("README.md: curriculum updated")


# --- 4. API reference -----------------------------------------------------------------------------

def first_line(path: Path) -> str:
    match = re.match(r'\s*(?:#[^\n]*\n\s*)*[rRuU]?"""\s*([^\n]*)', path.read_text(encoding="utf-8"))
    return match.group(1).strip().rstrip('"') if match else ""


def write_api() -> list[str]:
    """A page `api/<module path>.md` per public module; returns the pages in order."""
    package = ROOT / "src" / "fromscratch"
    target = GENERATED["api"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    pages, rows = [], []
    for source in sorted(package.rglob("*.py")):
        relative = source.relative_to(package).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        if not parts:
            continue  # the package's own __init__: the index page stands for it
        dotted = ".".join(parts)
        if API_SKIPPED.match(dotted):
            continue
        page = Path(*parts).with_suffix(".md")
        (target / page).parent.mkdir(parents=True, exist_ok=True)
        (target / page).write_text(f"# fromscratch.{dotted}\n\n::: fromscratch.{dotted}\n")
        pages.append(f"api/{page.as_posix()}")
        rows.append(f"| [`fromscratch.{dotted}`]({page.as_posix()}) | {first_line(source)} |")
    (target / "index.md").write_text(
        "# API reference\n\nEvery module, rendered from its docstrings.\n\n"
        "| module | what it holds |\n|---|---|\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    return ["api/index.md", *pages]


# --- 5. mkdocs ------------------------------------------------------------------------------------

class WarningsKept(logging.Handler):
    """Keeps mkdocs' warnings, to repeat them in the message of a failed build."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def pages_in(nav) -> list[str]:
    """Every page named in a navigation tree (lists of pages and {title: subtree})."""
    if isinstance(nav, str):
        return [nav]
    items = nav.values() if isinstance(nav, dict) else nav
    return [page for item in items for page in pages_in(item)]


def navigation(lessons: list[Lesson], api_pages: list[str]) -> list:
    derivations = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("derivations/*.md"))
    derivations.sort(key=lambda page: not page.endswith("index.md"))
    lesson_pages = [
        {f"{lesson.number:02d} · {lesson.title}": f"lessons/{lesson.name}.md"} for lesson in lessons
    ]
    nav = [
        {"Home": "index.md"},
        {"Install": "install.md"},
        {"Curriculum": "curriculum.md"},
        {"Lessons": ["lessons.md", *lesson_pages]},
        {"Derivations": derivations},
        {"API reference": api_pages},
        {"Benchmarks": "benchmarks.md"},
        {"Architecture": "architecture.md"},
    ]
    listed = set(pages_in(nav))
    others = sorted(
        page for page in (p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
        if page not in listed and not page.startswith(("lessons/", "api/"))
    )
    return nav + ([{"More": others}] if others else [])  # pages added to docs/ by hand


def build(
    only: list[str] | None = None, site_dir: Path = SITE, serve: bool = False,
    reuse_stale: bool = False,
) -> list[Lesson]:
    """Generate every page, then build the site into `site_dir` (or serve it); the lessons in it."""
    lessons = find_lessons(ROOT / "notebooks")
    if only:
        lessons = [lesson for lesson in lessons if lesson.name[:2] in only or lesson.name in only]
    vendor_katex()
    api_pages = write_api()
    write_curriculum(lessons)
    write_lessons(lessons, reuse_stale)

    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    # A partial build (--only) leaves links to the other lessons dangling: strict only when whole.
    nav = navigation(lessons, api_pages)
    settings = {"nav": nav, "strict": not only}
    if serve:  # the pages generated above are served as they are; edits to docs/ reload
        from mkdocs.commands.serve import serve as mkdocs_serve

        mkdocs_serve(str(ROOT / "mkdocs.yml"), **settings)
    else:
        from mkdocs.exceptions import MkDocsException

        warnings = WarningsKept()
        logging.getLogger("mkdocs").addHandler(warnings)
        try:
            mkdocs_build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(site_dir), **settings))
        except MkDocsException as err:
            sys.exit(f"docs build failed: {err}\n" + "\n".join(warnings.messages))
        finally:
            logging.getLogger("mkdocs").removeHandler(warnings)
        print(f"site built: {site_dir}/index.html")
    return lessons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="build only these lessons (numbers or names)")
    parser.add_argument("--site", type=Path, default=SITE, help="output folder (default: site/)")
    parser.add_argument("--serve", action="store_true", help="serve on localhost, rebuild on edit")
    parser.add_argument("--update-readme", action="store_true", help="refresh README's curriculum")
    parser.add_argument(
        "--reuse-stale", action="store_true",
        help="show the last run of each lesson even if the lesson or library changed since",
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(levelname)-7s -  %(message)s", level=logging.INFO)
    logging.getLogger("mkdocs").setLevel(logging.INFO)
    if args.update_readme:
        tracked = subprocess.run(
            ["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()  # the README lists only lessons a clone would have
        lessons = find_lessons(ROOT / "notebooks")
        update_readme([lesson for lesson in lessons if f"notebooks/{lesson.path.name}" in tracked])
    else:
        build(args.only, args.site, args.serve, args.reuse_stale)


if __name__ == "__main__":
    main()
