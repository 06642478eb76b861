"""Where the project keeps its cache: one rule for every user of it.

`SHUFFLENET_EDGE_CACHE` when set, else `$XDG_CACHE_HOME/shufflenet-edge`, else `~/.cache/shufflenet-edge`.
The test session points `SHUFFLENET_EDGE_CACHE` at a temporary folder, so tests never touch the user's home.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "SHUFFLENET_EDGE_CACHE"


def cache_root() -> Path:
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path(os.path.expanduser("~")) / ".cache"
    return base / "shufflenet-edge"


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (not created)."""
    return cache_root().joinpath(*parts)


@contextlib.contextmanager
def cache_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on `path` + ".lock" while a cache entry is checked and built: two processes (two test
    workers, two exports) build it once, and the second finds it done."""
    lock = Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
