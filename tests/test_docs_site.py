"""The documentation site, built and looked at in a real browser.

The site is built (scripts/build_docs.py: every lesson executed in fast mode, reusing the runs of
tests/test_notebooks.py, then `mkdocs build --strict`) and served from a local http.server; a
headless Chromium, driven over the DevTools protocol through a pipe, opens every page. Asserted:
every formula is typeset by KaTeX (no raw `$$` left), every image loads, every internal link
answers 200 and its #anchor exists, and the browser asks nothing of any other host (the site
works offline). A screenshot of a lesson page is kept in site-artifacts/lesson.png.

Setup: Debian's `chromium` (and `npm`, for KaTeX) are installed with apt-get when missing and the
tests run as root; where that is impossible the browser tests are skipped, saying why.
"""

import base64
import fcntl
import functools
import http.server
import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")
pytest.importorskip("nbclient")

# One worker builds and serves the site for every test here (run.py's pytest uses --dist
# loadgroup); under another split, a second worker waits for the first (see `served_site`).
pytestmark = pytest.mark.xdist_group("docs_site")

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
ARTIFACTS = ROOT / "site-artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def apt_install(package: str) -> str | None:
    """Install a Debian package; None when done, else why it cannot be."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-300:]}"
    return None


def find_chromium() -> str:
    found = next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        why = apt_install("chromium")
        found = next(filter(None, map(shutil.which, BROWSERS)), None)
        if found is None:
            pytest.skip(f"no Chromium to test the site in, and it cannot be installed: {why}")
    return found


def load_build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Chromium:
    """Headless Chromium, spoken to over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, binary: str, width: int = 1280, height: int = 1000):
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # The child needs its ends as fds 3 and 4: move them out of the way first, then dup2.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def child_fds():
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-pipe", f"--window-size={width},{height}",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_r)
        os.close(child_w)
        self.next_id, self.replies, self.events = 0, {}, queue.Queue()
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)
        # The theme's search loads its whole index on every page: not under test, and it would
        # double the time each page takes.
        self.call("Network.setBlockedURLs", {
            "urls": ["*/search/search_index.json", "*/workers/search.*"],
        }, session=True)
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False,
        }, session=True)

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self.from_browser, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self.lock:
                        self.replies[message["id"]] = message
                        self.lock.notify_all()
                else:
                    self.events.put(message)

    def call(self, method: str, params: dict | None = None, session: bool = False,
             timeout: float = 30.0) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        with self.lock:
            if not self.lock.wait_for(lambda: message["id"] in self.replies, timeout):
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            reply = self.replies.pop(message["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def open(self, url: str, timeout: float = 30.0) -> list[str]:
        """Load `url` and wait for its load event; returns every URL the page requested."""
        while not self.events.empty():
            self.events.get()
        self.call("Page.navigate", {"url": url}, session=True)
        requested = []
        while True:
            event = self.events.get(timeout=timeout)
            if event.get("method") == "Network.requestWillBeSent":
                requested.append(event["params"]["request"]["url"])
            if event.get("method") == "Page.loadEventFired":
                return requested

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.profile.cleanup()


# Everything the tests need to know about a page, measured once the page and its images loaded.
INSPECT_PAGE = r"""(async () => {
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll("pre, code, script, .katex").forEach(node => node.remove());
  return {
    math: document.querySelectorAll(".arithmatex").length,
    untypeset: [...document.querySelectorAll(".arithmatex")]
        .filter(el => !el.querySelector(".katex")).map(el => el.textContent.slice(0, 80)),
    katexErrors: [...document.querySelectorAll(".katex-error")]
        .map(el => el.title || el.textContent),
    rawDollars: prose.textContent.includes("$$"),
    rawDelimiters: /\\\(|\\\[/.test(prose.textContent),
    images: [...document.images].map(img => ({src: img.currentSrc, width: img.naturalWidth})),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    ids: [...document.querySelectorAll("[id]")].map(el => el.id),
  };
})()"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser that stops a download half way (a blocked or superseded request)


@pytest.fixture(scope="module")
def served_site():
    chromium = find_chromium()
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / "docs-site.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the site's folders are shared: one build at a time
        yield from build_and_serve(chromium)


def build_and_serve(chromium: str):
    if not shutil.which("npm"):
        why = apt_install("npm")
        if why:
            pytest.fail(f"the docs build needs npm for KaTeX, and it cannot be installed: {why}")
    # FROMSCRATCH_DOCS_REUSE_STALE=1 shows earlier runs of changed lessons (for editing the tests).
    stale_ok = os.environ.get("FROMSCRATCH_DOCS_REUSE_STALE") == "1"
    threads = os.environ.get("OMP_NUM_THREADS")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"  # the lessons it runs share the cores with a worker
    try:
        started = time.perf_counter()
        lessons = load_build_docs().build(site_dir=SITE, reuse_stale=stale_ok)
        print(f"site built in {time.perf_counter() - started:.0f} s")
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads

    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Chromium(chromium)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages, started = {}, time.perf_counter()
    for html in sorted(SITE.rglob("*.html")):
        if html.name == "404.html":
            continue
        url = base + html.relative_to(SITE).as_posix()
        requested = browser.open(url)
        pages[url] = {**browser.evaluate(INSPECT_PAGE), "requested": requested}
    print(f"{len(pages)} pages opened in Chromium in {time.perf_counter() - started:.0f} s")
    try:
        yield base, pages, browser, lessons
    finally:
        browser.close()
        server.shutdown()


def lesson_pages(pages: dict) -> dict:
    return {url: page for url, page in pages.items() if re.search(r"/lessons/\d\d_\w+\.html$", url)}


def test_every_lesson_and_section_has_a_page(served_site):
    base, pages, _, lessons = served_site
    assert len(lessons) >= 5
    for lesson in lessons:
        assert f"{base}lessons/{lesson.name}.html" in pages, lesson.name
    for page in ["index", "install", "curriculum", "lessons", "derivations/index", "api/index",
                 "benchmarks", "architecture"]:
        assert f"{base}{page}.html" in pages, page


def test_math_is_typeset_by_katex(served_site):
    _, pages, _, _ = served_site
    with_math = {url: page for url, page in pages.items() if page["math"]}
    assert len(with_math) >= len(lesson_pages(pages)) // 2 + 1, "math was found on too few pages"
    for url, page in pages.items():
        assert page["untypeset"] == [], url
        assert page["katexErrors"] == [], url
        assert not page["rawDollars"], f"{url}: a $$ was left as text"
        assert not page["rawDelimiters"], f"{url}: a \\( or \\[ was left as text"


def test_every_image_loads(served_site):
    _, pages, _, _ = served_site
    figures = [img for page in lesson_pages(pages).values() for img in page["images"]]
    assert len(figures) >= len(lesson_pages(pages)), "each lesson shows at least one figure"
    for url, page in pages.items():
        for image in page["images"]:
            assert image["width"] > 0, f"{url}: {image['src']} did not load"


def test_every_internal_link_answers_and_its_anchor_exists(served_site):
    base, pages, _, _ = served_site
    targets = {link for page in pages.values() for link in page["links"] if link.startswith(base)}
    assert len(targets) > 50
    ids = {url: set(page["ids"]) for url, page in pages.items()}
    for link in sorted(targets):
        address, anchor = urldefrag(link)
        try:
            status = urllib.request.urlopen(address, timeout=10).status
        except urllib.error.HTTPError as err:
            status = err.code
        assert status == 200, f"{link} answers {status}"
        if anchor and address in ids:
            assert anchor in ids[address], f"{link}: no element with id {anchor!r}"


def test_the_site_asks_no_other_host(served_site):
    base, pages, _, _ = served_site
    host = urlparse(base).netloc
    for url, page in pages.items():
        for request in page["requested"]:
            parsed = urlparse(request)
            assert parsed.scheme in ("data", "blob") or parsed.netloc == host, (url, request)


def test_screenshot_of_a_lesson_page(served_site):
    base, pages, browser, _ = served_site
    with_math = [url for url in sorted(lesson_pages(pages)) if pages[url]["math"]]
    lesson = next((url for url in with_math if "/02_attention." in url), with_math[0])
    browser.open(lesson)
    # Scroll to the first figure, keeping the text and formulas above it in view.
    browser.evaluate(
        "(() => { const img = document.querySelector('article img');"
        " if (img) window.scrollTo(0, img.getBoundingClientRect().top + scrollY - 500); })()"
    )
    browser.evaluate("new Promise(done => setTimeout(done, 500))")  # the header's fade ends
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "lesson.png"
    browser.screenshot(shot)
    png = shot.read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (width, height) == (1280, 1000)
    assert len(png) > 30_000, "a lesson page with text, math and a figure is not a blank picture"


# The build's parts, without a browser.

def test_a_lesson_page_shows_code_text_output_and_figures(tmp_path):
    import nbformat

    build_docs = load_build_docs()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really an image").decode()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lesson 99 — A test\nSome text:\n$$\nx^2\n$$\nmore."),
        nbformat.v4.new_code_cell("print('hi')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
            nbformat.v4.new_output("stream", name="stderr", text="10%|#\r100%|##########|\n"),
            nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "F"}),
            nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
        ]),
    ])
    lesson = build_docs.Lesson(99, "99_test", tmp_path / "99_test.py", "A test", "", ())
    page = build_docs.lesson_markdown(lesson, notebook, tmp_path / "99_test_files")

    assert page.startswith("# Lesson 99 — A test\n\n!!! info")  # the heading, then the note
    assert "Some text:\n\n$$\nx^2\n$$\n\nmore." in page  # display math set apart as a block
    assert "```python\nprint('hi')\n```" in page
    assert "```text\nhi\n100%|##########|\n```" in page  # a progress bar's final state only
    assert "```text\n42\n```" in page
    figure = tmp_path / "99_test_files" / "cell001_2.png"
    assert figure.read_bytes() == base64.b64decode(png)
    assert "![figure](99_test_files/cell001_2.png)" in page


def test_a_lesson_that_fails_stops_the_build_and_leaves_no_cached_run(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    from fromscratch.lessons import run_lesson_cached

    lesson = tmp_path / "98_broken.py"
    lesson.write_text("# %%\nx = 1\n\n# %%\nraise ValueError('planted failure')\n")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="planted failure"):
        run_lesson_cached(lesson, tmp_path / "cache")
    assert not (tmp_path / "cache" / "98_broken.ipynb").exists()

    lesson.write_text("# %%\nprint(6 * 7)\n")  # fixed: it runs, and the next call reuses it
    first = run_lesson_cached(lesson, tmp_path / "cache")
    assert first.cells[0].outputs[0].text == "42\n"
    (tmp_path / "cache" / "98_broken.ipynb").write_text(
        (tmp_path / "cache" / "98_broken.ipynb").read_text().replace("42", "43")
    )
    assert run_lesson_cached(lesson, tmp_path / "cache").cells[0].outputs[0].text == "43\n"


def test_a_lesson_without_its_data_is_shown_as_far_as_it_ran_and_not_kept(tmp_path):
    from fromscratch.lessons import DATA_UNAVAILABLE, run_lesson_cached

    lesson = tmp_path / "97_offline.py"
    lesson.write_text(
        "# %% [markdown]\n# # Lesson 97 — Offline\n\n"
        "# %%\nprint('before the data')\n\n"
        "# %%\nimport os\nfrom fromscratch.data import DataUnavailable\n"
        "raise DataUnavailable('could not download http://127.0.0.1:9/x.json; put the file at '\n"
        "                      + os.environ['FROMSCRATCH_CACHE'] + '/x.json yourself')\n\n"
        "# %%\nprint('after the data')\n"
    )
    notebook = run_lesson_cached(lesson, tmp_path / "cache")
    assert notebook.metadata[DATA_UNAVAILABLE] == (  # the lesson's own download folder, named
        "could not download http://127.0.0.1:9/x.json; put the file at "  # as a reader's run
        "~/.cache/fromscratch/x.json yourself"  # names it, not as the build machine's
    )
    assert notebook.cells[1].outputs[0].text == "before the data\n"
    assert notebook.cells[2].outputs[-1].output_type == "error"
    assert notebook.cells[3].outputs == []  # not run
    assert not (tmp_path / "cache" / "97_offline.ipynb").exists()  # the next run tries again

    build_docs = load_build_docs()
    page = build_docs.lesson_markdown(
        build_docs.Lesson(97, "97_offline", lesson, "Offline", "", ()), notebook,
        tmp_path / "97_offline_files",
    )
    heading, note, warning = page.split("\n\n")[:3]
    assert heading == "# Lesson 97 — Offline" and note.startswith('!!! info')
    assert warning.startswith('!!! warning "Run only as far as its data"\n    This lesson needs')
    assert "`fromscratch lessons open 97`" in warning
    assert "    ```text\n    could not download http://127.0.0.1:9/x.json; put the file at" in page
    assert "```text\nbefore the data\n```" in page  # what ran is shown with its output
    assert page.rstrip().endswith("```python\nprint('after the data')\n```")  # the rest without
