"""What every exporter shares: output paths, atomic writes, the sidecar JSON, tool versions, progress."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from shufflenet_edge.errors import EdgeError

DEFAULT_OUT_DIR = "out"


def tool_versions(*dists: str) -> dict[str, str]:
    out = {}
    for d in ("shufflenet-edge", "torch", *dists):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def default_output(model: str, precision: str, ext: str, form: str | None = None) -> Path:
    return Path(DEFAULT_OUT_DIR) / f"{model}_{precision}.{ext}"


def check_writable(path: Path) -> None:
    """Fail before minutes of conversion if the output cannot be written."""
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
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it into place only if the block succeeds."""
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial" + final.suffix, dir=final.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; artifacts are ordinary files
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        data = Path(str(tmp_path) + ".data")
        if data.exists():
            data.unlink()


def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    return Path(str(artifact) + ".json")


def write_sidecar(artifact: Path, info: dict[str, Any]) -> Path:
    path = sidecar_path(artifact)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return path


def read_sidecar(artifact: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgeError(f"cannot read sidecar {path}: {e}") from e
    if not isinstance(data, dict):
        raise EdgeError(f"sidecar {path} is not a JSON object")
    return data


def progress(enabled: bool = True) -> Any:
    """A rich status spinner on stderr (silent when not a terminal or disabled)."""
    from rich.console import Console

    console = Console(stderr=True, quiet=not enabled)

    class _P:
        def step(self, text: str) -> Any:
            return console.status(text, spinner="dots")

        def log(self, text: str) -> None:
            console.print(text, highlight=False)

    return _P()
