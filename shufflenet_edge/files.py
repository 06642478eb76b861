"""Files: the one sha256 and the one atomic write of the project (artifacts, sidecars, reports, plots).

A write goes to a temporary file beside its destination and is renamed into place only when it is complete, so
a failure or Ctrl-C never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shufflenet_edge.errors import EdgeError


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_writable(path: Path) -> None:
    """Fail before minutes of work if the output cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        raise EdgeError(f"output path is a folder: {path}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeError(f"cannot create output folder {parent}: {e.strerror or e}") from e
    if not os.access(parent, os.W_OK):
        raise EdgeError(f"output folder is not writable: {parent}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `final` (same suffix, so writers that read it still work); rename it into
    place only if the block succeeds."""
    final = Path(final)
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + final.suffix, dir=parent)
    except OSError as e:
        raise EdgeError(f"cannot write {final}: {e.strerror or e}") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)
        Path(str(tmp_path) + ".data").unlink(missing_ok=True)  # ONNX external data, if a writer made one


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(obj: Any, path: str | os.PathLike[str], indent: int = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=str) + "\n")
