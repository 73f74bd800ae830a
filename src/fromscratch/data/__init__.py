"""Data: loaders for each kind of example, and the one way we download files.

Each data module (`text`, ...) turns a source (a name like "shakespeare", or a path) into tensors.
Downloads all go through `download`: into a cache folder, checked against a SHA-256 hash, and
written atomically, so a half-finished download never looks like a finished one.
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from fromscratch.errors import UserError


def default_cache_dir() -> Path:
    """Where downloads live: `$FROMSCRATCH_CACHE` if set, else `~/.cache/fromscratch`."""
    return Path(os.environ.get("FROMSCRATCH_CACHE", Path.home() / ".cache" / "fromscratch"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, path: Path, sha256: str, *, progress: bool = True) -> Path:
    """Make sure `path` holds the file at `url` whose SHA-256 is `sha256`; return `path`.

    A file already at `path` with the right hash is used as is (no network). Otherwise the file is
    streamed into a temporary file next to `path`, its hash checked, and only then renamed to
    `path` (a rename within one folder is atomic), so an interrupted or corrupted download never
    becomes the cached file.
    """
    path = Path(path)
    if path.is_file() and sha256_of(path) == sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=not progress)
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            bar.close()
        if digest.hexdigest() != sha256:
            raise UserError(
                f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected "
                f"{sha256}: try again later, or download it yourself and pass its path"
            )
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError) as error:
        raise UserError(
            f"could not download {url} ({error}); if you are offline, put the file at {path} "
            "or pass the path of a local text file instead"
        ) from error
    finally:
        tmp.unlink(missing_ok=True)
    return path
