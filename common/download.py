"""Downloads with a progress bar, resume of partial files, checksum checks, and offline messages that say
which URL to fetch and where to put the file by hand."""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from typing import Sequence

from tqdm import tqdm

from common.cli import DataError


class DownloadError(DataError):
    """A file could not be fetched or failed its checksum; the message says what to do instead."""


def _fetch(url: str, part: str, timeout: float) -> None:
    """Append the rest of `url` to `part`, resuming from its current size when the server allows."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            return
        raise
    with response:
        if have and response.status != 206:  # server ignored the range: start over
            have = 0
        total = response.length + have if response.length is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=os.path.basename(part[:-5]), disable=None) as bar:
            while block := response.read(1 << 16):
                f.write(block)
                bar.update(len(block))


def file_digest(path: str, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(urls: Sequence[str] | str, path: str, sha256: str | None = None, timeout: float = 30.0,
             md5: str | None = None) -> str:
    """Fetch `path` from the first of `urls` that answers; resume a `.part` file left by an earlier try;
    check `sha256` (or `md5`, for data sets published with one) when given. Returns `path`."""
    urls = [urls] if isinstance(urls, str) else list(urls)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    part = path + ".part"
    errors = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
        if expected and (got := file_digest(part, algorithm)) != expected:
            os.unlink(part)
            errors.append(f"{url}: checksum mismatch ({algorithm} {got}, expected {expected})")
            continue
        os.replace(part, path)
        return path
    raise DownloadError(
        f"cannot download {os.path.basename(path)} ({'; '.join(errors)}). "
        f"Without network access, fetch {urls[0]} by hand and put it at {os.path.abspath(path)}")
