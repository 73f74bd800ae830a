"""mkdocs hook: links written for the repository work in the site too.

A page may link to files the way they sit in the repository, which is how they work when the
Markdown is read on disk: `../notebooks/02_attention.py`, `../src/fromscratch/language/gpt.py`,
`../docs/derivations/diffusion.md` (from a lesson). Each such link is pointed at the site's page
for that file: the rendered lesson, the API page, the docs page. A link to a repository file with
no page (a benchmark script, a test) becomes its path in code font. Anything else is left alone,
so `mkdocs build --strict` still fails on a link to nothing.
"""

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(!?\[[^\]\n]*\])\(([^()\s#]+)(#[^()\s]*)?\)")


def page_location(src_uri: str) -> str | None:
    """Where the Markdown of the page `src_uri` sits in the repository (as a posix path)."""
    if src_uri.startswith("lessons/") and src_uri.count("/") == 1:
        return f"notebooks/{Path(src_uri).stem}.py"  # generated from the lesson file
    if src_uri.startswith("api/"):
        return None
    return f"docs/{src_uri}"


def site_page(repo_path: str) -> str | None:
    """The docs-relative page that stands for the repository file `repo_path`, if any."""
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    match = re.fullmatch(r"notebooks/(\d\d_\w+)\.(?:py|ipynb)", repo_path)
    if match:
        return f"lessons/{match.group(1)}.md"
    match = re.fullmatch(r"src/fromscratch/([\w/]+)\.py", repo_path)
    if match:
        return f"api/{match.group(1).removesuffix('/__init__')}.md"
    if repo_path == "README.md":
        return "index.md"
    return None


def on_page_markdown(markdown, page, config, files):
    location = page_location(page.file.src_uri)
    if location is None:
        return markdown
    known = {file.src_uri for file in files}

    def rewrite(match: re.Match) -> str:
        text, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(location), target))
        if repo_path.startswith("docs/") and location.startswith("docs/"):
            return match.group(0)  # an ordinary link between docs pages
        page_path = site_page(repo_path)
        if page_path in known:
            here = posixpath.dirname(page.file.src_uri)
            return f"{text}({posixpath.relpath(page_path, here or '.')}{anchor})"
        if not text.startswith("!") and (ROOT / repo_path).is_file():
            return f"`{repo_path}`" if text == f"[{target}]" else f"{text[1:-1]} (`{repo_path}`)"
        return match.group(0)

    return LINK.sub(rewrite, markdown)
