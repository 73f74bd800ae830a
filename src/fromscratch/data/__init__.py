"""Data: loaders for each kind of example, and the one way we download files.

Each data module (`text`, ...) turns a source (a name like "shakespeare", or a path) into tensors.
Downloads all go through `download`: into a cache folder, checked against a SHA-256 hash, and
renamed into place only when whole, so a half-finished download never looks like a finished one;
an interrupted one is retried and continued where it stopped. A download that cannot be made
raises `DataUnavailable`, which says what is missing and how to get it.

Copies kept on this machine: the tests and the lessons read a data set from `local_copy(name)`
when it is there, and download it only when it is not. The copies live in `$FROMSCRATCH_DATA`
when that is set, else in `shared/data` beside the repository's folder (one copy for every
checkout on a machine). They are named as in the cache: `tinyshakespeare.txt`,
`sms_spam_collection.tsv`, `free-spoken-digit-dataset/recordings/*.wav`, `jsb-chorales/*.json`.
`FROMSCRATCH_DATA` set to an empty folder is a machine with no copies.
"""

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fromscratch.errors import UserError

DATA_ENV = "FROMSCRATCH_DATA"  # the folder of data copies kept on this machine
CHECKOUT_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"  # beside the repository


class DataUnavailable(UserError):
    """A data set that is neither on this machine nor downloadable now (offline, server down).

    A lesson that raises it stops there and is shown as far as it ran (`fromscratch.lessons`).
    """


def local_copy(name: str) -> Path | None:
    """The copy of the data file or folder `name` kept on this machine, or None if there is none.

    `local_copy("jsb-chorales")` is `$FROMSCRATCH_DATA/jsb-chorales` when that variable is set,
    else `shared/data/jsb-chorales` beside the repository's folder, if it exists.
    """
    folder = Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else CHECKOUT_DATA
    path = folder / name
    return path if path.exists() else None


def default_cache_dir() -> Path:
    """Where downloads live: `$FROMSCRATCH_CACHE` if set, else `~/.cache/fromscratch`."""
    return Path(os.environ.get("FROMSCRATCH_CACHE", Path.home() / ".cache" / "fromscratch"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str, path: Path, sha256: str, *, progress: bool = True, attempts: int = 3,
    retry_wait: float = 2.0,
) -> Path:
    """Make sure `path` holds the file at `url` whose SHA-256 is `sha256`; return `path`.

    A file already at `path` with the right hash is used as is (no network). Otherwise the bytes
    go to `.{name}.part` next to `path`; a dropped connection is retried (`attempts` times, after
    retry_wait, 2·retry_wait, ... seconds) and continues where it stopped, with an HTTP Range
    request, so is a `.part` file an interrupted earlier run left. Only a file whose hash is
    right is renamed to `path` (atomic within a folder): a half-finished or corrupted download
    never becomes the cached file.
    """
    path = Path(path)
    if path.is_file() and sha256_of(path) == sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(retry_wait * attempt)
        try:
            _fetch_rest(url, part, progress)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            problem = f"{type(error).__name__}: {error}"
            continue
        if sha256_of(part) == sha256:
            os.replace(part, path)
            return path
        problem = f"the file has SHA-256 {sha256_of(part)}, expected {sha256}"
        part.unlink()  # wrong bytes: the next attempt starts from the beginning
    raise DataUnavailable(
        f"could not download {url} after {attempts} attempts ({problem}); try again later (it "
        f"continues where it stopped), or put the file at {path} yourself"
    )


def _fetch_rest(url: str, part: Path, progress: bool) -> None:
    """Append to `part` the bytes of `url` it lacks; raise if the connection ends early."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after byte `have`: the file is already whole
            return
        raise
    with response:
        if response.status != 206:  # the server sent the whole file (it ignores Range)
            have = 0
        length = int(response.headers.get("Content-Length") or 0) or None
        received = 0
        bar = tqdm(total=have + length if length else None, initial=have, unit="B",
                   unit_scale=True, desc=part.name[1:-5], disable=not progress)
        with open(part, "ab" if have else "wb") as out:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        bar.close()
    if length is not None and received < length:  # urllib ends a dropped stream quietly
        raise ConnectionError(f"the connection closed after {received} of {length} bytes")
