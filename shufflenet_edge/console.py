"""Our own lines on the terminal, the native libraries' lines in a capture file.

Converters and runtimes (absl, oneDNN, XNNPACK's "INFO: Created TensorFlow Lite XNNPACK delegate", glog-style
torch warnings such as `W1202 ... _pytree.py`) write to file descriptor 2 directly, below anything Python can
filter. So while a command runs (unless `--debug`), descriptor 2 is pointed at a temporary file, and our own
messages go to a duplicate of the original descriptor through `err()`. Child processes inherit the capture.
When the command fails unexpectedly, the captured text is shown before the error line; when it fails with a
user-facing error, the error line names the file that holds the captured text.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

_ours: IO[str] | None = None  # set while a capture is active


def err() -> IO[str]:
    """The stream for our own stderr lines (the terminal, even while native output is captured)."""
    return _ours if _ours is not None else sys.stderr


class Capture:
    """What the native libraries wrote while the capture was active."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def text(self, limit: int = 20000) -> str:
        if not self.path:
            return ""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def keep(self) -> str | None:
        """Keep the capture file (for an error message); its path, or None if it is empty."""
        if self.path and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            p, self.path = self.path, None
            return p
        return None


def _fd_of(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def capture_native(enabled: bool = True) -> Iterator[Capture]:
    """Point descriptor 2 at a temporary file for the block; `err()` writes to the real stderr meanwhile."""
    global _ours
    if not enabled or _ours is not None or _fd_of(sys.stderr) != 2:
        # Nested, disabled, or stderr is not descriptor 2 (an in-process test capturing sys.stderr): no capture.
        yield Capture(None)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    fd, path = tempfile.mkstemp(prefix="shufflenet-edge-native-", suffix=".log")
    cap = Capture(path)
    ours = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                     errors="replace")
    try:
        os.dup2(fd, 2)
        _ours = ours
        yield cap
    finally:
        _ours = None
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        ours.close()
        if cap.path:
            with contextlib.suppress(OSError):
                os.unlink(cap.path)
