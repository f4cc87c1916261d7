"""Resumable, checksummed downloads: the one place facekit reads from the network.

Only explicit commands use it (``facekit assets fetch ict``, ``facekit data fetch orl``).
A download goes to ``<target>.part`` and resumes from there (HTTP Range) when interrupted;
it replaces the target atomically only once its sha256 matches the pinned one. Every connect
and every read waits at most :data:`TIMEOUT` seconds, so an offline machine fails in seconds
instead of hanging; a stalled transfer fails the same way and the next fetch resumes it.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

TIMEOUT = 5.0
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's sha256 differs from the pinned one: corrupt, truncated or altered."""


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in chunks (files here reach hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def join_url(base: str, name: str) -> str:
    """``base/name`` for a URL (``name`` quoted) or a local folder."""
    if "://" not in base:
        return str(Path(base).expanduser() / name)
    return base.rstrip("/") + "/" + urllib.parse.quote(name)


def open_at(src: str, offset: int, timeout: float | None = None) -> tuple[IO[bytes], bool]:
    """Open ``src`` (an http(s) or ``file://`` URL, or a path) at byte ``offset``; the flag
    says whether it resumed there (a server that ignores Range sends the whole file)."""
    if src.startswith("file://"):
        src = urllib.request.url2pathname(urllib.parse.urlparse(src).path)
    if "://" not in src:
        fh = open(src, "rb")
        fh.seek(offset)
        return fh, True
    request = urllib.request.Request(src, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT if timeout is None else timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part file is already complete
            return io.BytesIO(), True
        raise
    return response, response.status == 206


def download(src: str, target: Path, sha256: str, *, restart: bool = False, fix: str = "",
             timeout: float | None = None) -> None:
    """Download ``src`` to ``target``, resuming ``target.part`` unless ``restart``.

    ``OSError`` names the file and the source when it cannot be reached; ``ChecksumError``
    (the partial file deleted) when the bytes differ from ``sha256``; ``fix`` is appended to
    the latter, saying how to get a good copy. ``timeout`` defaults to :data:`TIMEOUT`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if restart:
        part.unlink(missing_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    try:
        stream, resumed = open_at(src, offset, timeout)
    except OSError as err:
        raise OSError(f"cannot download {target.name} from {src}: {err}") from err
    try:
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
    except OSError as err:
        raise OSError(f"download of {target.name} from {src} stopped ({err}); "
                      f"run the fetch again to resume from {part.stat().st_size} bytes") from err
    finally:
        stream.close()
    got = sha256_file(part)
    if got != sha256:
        part.unlink()
        raise ChecksumError(f"{target.name}: sha256 {got} does not match the pinned {sha256}; the file is corrupt "
                            f"or incomplete{': ' + fix if fix else ''}")
    os.replace(part, target)
