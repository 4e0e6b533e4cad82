"""The one download helper of the course: MNIST, paintings and image URLs all come through `download`.

A download streams into a temp file in the destination folder, is hashed on the way, and only a complete
file with the expected hash is renamed into place (`os.replace` is atomic): a failed, interrupted or corrupt
download never leaves a partial file. Set COURSE_OFFLINE=1 to skip every download attempt (a workshop with
bad Wi-Fi); the course then takes its offline paths at once.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .runtime import progress as progress_bar

__all__ = ["download", "atomic_write", "file_hash", "offline", "first_line", "DownloadError", "ChecksumError",
           "USER_AGENT"]

USER_AGENT = "image-gen-course/0.1 (https://github.com/image-gen-course/image-gen-course)"  # Wikimedia asks for one


def offline() -> bool:
    """True when COURSE_OFFLINE=1: no download is attempted."""
    return os.environ.get("COURSE_OFFLINE", "0") == "1"


def first_line(error: BaseException) -> str:
    """The first line of an error message, for one-line notices."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DownloadError(OSError):
    """A download that failed (offline, timeout, HTTP error, cut short); nothing was written.

    `str(error)` names the asset and the URL; `error.reason` is the short cause, for one-line notices."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class ChecksumError(ValueError):
    """A downloaded file whose hash differs from the pinned one; the file was discarded."""


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, md5: str | None = None,
             name: str | None = None, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest` and return `dest`.

    The bytes stream into a temp file in dest's folder (`atomic_write`) and are hashed on the way; only a
    complete file with the expected hash (`sha256`, else `md5`, when given) is renamed to `dest`, so a
    failed, interrupted or corrupt download leaves nothing behind. An existing `dest` with the right hash
    (any existing `dest` when no hash is given) is kept without a download.
    Raises `DownloadError` (offline, timeout, HTTP error, body cut short) or `ChecksumError` (names both hashes).
    """
    dest, name = Path(dest), name or Path(dest).name
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5) if md5 else ("sha256", None)
    expected = expected.lower() if expected else None
    if dest.is_file() and (expected is None or file_hash(dest, algorithm) == expected):
        return dest
    if offline():
        raise DownloadError(f"not downloading {name}: COURSE_OFFLINE=1", "COURSE_OFFLINE=1")
    with atomic_write(dest) as out:
        actual = _stream(url, out, name=name, algorithm=algorithm, timeout=timeout, progress=progress)
        if expected is not None and actual != expected:
            raise ChecksumError(f"{name}: {algorithm} mismatch, expected {expected}, got {actual}; the download "
                                f"from {url} was discarded (the file changed upstream or the transfer was corrupted)")
    return dest


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write `path` all at once or not at all: yield a new hidden file next to it; when the block ends without
    an error, flush it to disk and rename it to `path` (`os.replace` is atomic); on any error, delete it.
    (Unlike `tempfile.mkstemp`, the file gets the usual permissions, so others can read a shared cache.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    out = open(tmp, "xb")
    try:
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stream(url: str, out, *, name: str, algorithm: str, timeout: float, progress: bool) -> str:
    """Copy the body at `url` into the open file `out` with a progress bar; return its hex digest."""
    digest, received, total = hashlib.new(algorithm), 0, None
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                              disable=None if progress else True, leave=False) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code} {e.reason}"
        raise DownloadError(f"could not download {name} from {url}: {reason}", reason) from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # offline, timeout, reset
        reason = str(e.reason) if isinstance(e, urllib.error.URLError) else f"{type(e).__name__}: {e}"
        raise DownloadError(f"could not download {name} from {url}: {reason}", reason) from e
    if total is not None and received != total:
        reason = f"the transfer stopped after {received} of {total} bytes"
        raise DownloadError(f"download of {name} from {url} failed: {reason}", reason)
    return digest.hexdigest()
