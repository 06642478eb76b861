"""The `shufflenet-edge` command. Exit codes: 0 ok, 1 failure, 2 usage error, 128 + N when stopped by signal N
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: the same clean stop for all three, children and temporary files gone)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from shufflenet_edge import __version__
from shufflenet_edge.errors import EdgeError, InternalError, UsageError

DEFAULT_MODEL = "shufflenet_v2_x1_0"

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler, str]] = {}


def command(name: str, help: str) -> Callable[[Callable[[argparse.ArgumentParser], None]], Any]:
    """Register a sub-command: the decorated function adds its arguments; it returns a setter for the handler."""

    def deco(add_args: Callable[[argparse.ArgumentParser], None]) -> Any:
        def set_handler(handler: Handler) -> Handler:
            _COMMANDS[name] = (add_args, handler, help)
            return handler

        return set_handler

    return deco


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def input_size(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be an integer >= 32, got {s!r}") from None
    if v < 32:
        raise argparse.ArgumentTypeError(
            f"input size must be >= 32 (the networks downsample by 32), got {v}"
        )
    return v


# --------------------------------------------------------------------------------------------------- --json
# One meaning on every command: `--json` alone prints the JSON document to stdout (and nothing else goes to
# stdout: the human table, if the command prints one, moves to stderr); `--json FILE.json` writes it there.

JSON_STDOUT = "-"


def json_destination(s: str) -> str:
    """`--json`'s value: `-` (stdout) or a FILE.json. A value not ending in .json is refused, so that
    `inspect --json model.tflite` never overwrites the artifact it was meant to read."""
    if s == JSON_STDOUT or s.lower().endswith(".json"):
        return s
    raise argparse.ArgumentTypeError(
        f"expected FILE.json, or nothing to print the JSON on stdout; got {s!r} (put --json after the other "
        "arguments, or write --json -)")


def add_json_argument(p: argparse.ArgumentParser, what: str = "the result", default: str | None = None) -> None:
    """`--json [FILE.json]`: alone, JSON on stdout; with a file, written there (atomically). `default`: a file
    written when --json is not given at all (bench)."""
    tail = f" (default {default})" if default else ""
    p.add_argument("--json", nargs="?", const=JSON_STDOUT, default=default, type=json_destination,
                   metavar="FILE.json", help=f"{what} as JSON: on stdout with --json alone, or into FILE.json{tail}")


def json_to_stdout(args: argparse.Namespace) -> bool:
    return getattr(args, "json", None) == JSON_STDOUT


def human_stream(args: argparse.Namespace) -> IO[str]:
    """Where the human-readable output goes: stdout, or stderr when stdout carries the JSON."""
    if json_to_stdout(args):
        from shufflenet_edge.console import err

        return err()
    return sys.stdout


def emit_json(obj: Any, dest: str | None) -> Path | None:
    """Print `obj` as JSON on stdout (`dest` "-") or write it to `dest` atomically; the path written, or None."""
    if not dest:
        return None
    text = json.dumps(obj, indent=2, default=str) + "\n"
    if dest == JSON_STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    path = Path(dest)
    if path.is_dir():
        raise UsageError(f"--json path is a folder: {dest}")
    from shufflenet_edge.files import atomic_path

    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except OSError as e:
        raise EdgeError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    p = _Parser(
        prog="shufflenet-edge",
        description="ShuffleNet V1/V2 from PyTorch to phones and ARM boards: export, quantize, check parity, benchmark.",
    )
    p.add_argument("--version", action="version", version=f"shufflenet-edge {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (add_args, handler, help_) in _COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        try:
            add_args(sp)
        except ModuleNotFoundError as e:  # an install without torch (runtimes only): the command says so when used
            sp.set_defaults(_handler=_needs(name, e.name or str(e)), _lenient=True)
            continue
        sp.set_defaults(_handler=handler)
    return p


# The import names of the default install's dependencies: one missing means an install without it (a board or CI
# runner with only the runtimes), not a bug.
DEPENDENCY_MODULES = frozenset({"torch", "torchao", "numpy", "onnx", "onnxruntime", "onnxscript", "onnxslim",
                                "litert_torch", "ai_edge_litert", "PIL", "rich", "matplotlib"})


def _needs_message(command: str, module: str) -> str:
    return (f"`{command}` needs {module}, which is not installed here: pip install -c constraints.txt shufflenet-edge "
            "(the full install; see the README)")


def _needs(command: str, module: str) -> Handler:
    def handler(_args: argparse.Namespace) -> int:
        raise EdgeError(_needs_message(command, module))

    return handler


def _load_commands() -> None:
    if _COMMANDS:
        return
    from shufflenet_edge import commands  # noqa: F401  (fills _COMMANDS)
    from shufflenet_edge.commands import profile  # noqa: F401  (profile-report)


def _quiet_native_logs() -> None:
    """TF/absl/glog chatter from the converters goes to stderr before Python can filter it."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    logging.getLogger("torchao").setLevel(logging.ERROR)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so the command unwinds as it does on Ctrl-C: `finally`
    blocks kill child processes and remove temporary files (a KeyboardInterrupt, so every Ctrl-C path applies)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise `Stopped` in the main thread (once: a second signal during
    the clean-up is ignored, so the clean-up finishes; a stop, Ctrl-C's too, that a finalizer swallowed is raised
    again). Elsewhere (a thread, no signals): nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if stopping:
            return
        stopping.append(signum)
        raise Stopped(signum)

    previous_hook = sys.unraisablehook

    def unraisable(u: Any) -> None:
        # A stop raised while Python runs a finalizer or a gc callback (JAX registers one, and litert-torch's
        # conversion collects often) is printed and dropped by Python, and the command would run on to the end.
        # Deliver the signal again from another thread, a moment later: its handler then runs in the main thread
        # once the finalizer has returned, and raises where the stop can propagate.
        if isinstance(u.exc_value, KeyboardInterrupt):
            signum = getattr(u.exc_value, "signum", signal.SIGINT)
            stopping.clear()
            threading.Timer(0.01, again, (signum,)).start()
            return
        previous_hook(u)

    def again(signum: int) -> None:
        if active:  # never after the block: the default action of SIGTERM would kill the process
            signal.raise_signal(signum)

    old: dict[int, Any] = {}
    for s in STOP_SIGNALS:
        try:
            old[s] = signal.signal(s, handler)
        except (ValueError, OSError):  # pragma: no cover (not the main interpreter)
            pass
    sys.unraisablehook = unraisable
    active = True
    try:
        yield
    finally:
        active = False
        sys.unraisablehook = previous_hook
        for s, h in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(s, h)


def _stop_message(e: KeyboardInterrupt) -> tuple[int, str]:
    signum = getattr(e, "signum", signal.SIGINT)
    if signum == signal.SIGINT:
        return 130, "shufflenet-edge: interrupted"
    return 128 + int(signum), f"shufflenet-edge: stopped by {signal.Signals(signum).name}"


def main(argv: Sequence[str] | None = None) -> int:
    with stop_on_signals():
        try:
            return _main(argv)
        except KeyboardInterrupt as e:  # before or after the command (parsing, the capture's own clean-up)
            rc, message = _stop_message(e)
            print(message, file=sys.stderr)
            return rc


def _main(argv: Sequence[str] | None = None) -> int:
    from shufflenet_edge.console import capture_native

    _quiet_native_logs()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_lenient", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = bool(getattr(args, "debug", False))
    if not debug:
        warnings.simplefilter("ignore")
    rc, message, native, failure = 0, None, None, None
    # Native libraries' stderr goes to a capture file unless --debug (shufflenet_edge/console.py); the file is
    # removed when the command ends, unless an error message names it.
    with capture_native(enabled=not debug) as cap:
        try:
            rc = int(args._handler(args) or 0)
        except UsageError as e:
            rc, message, failure = 2, f"shufflenet-edge: error: {e}", e
        except EdgeError as e:
            rc, message, failure = 1, f"shufflenet-edge: error: {e}", e
            log = cap.keep()
            if log:
                message += f" (native library output: {log})"
        except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP (Stopped)
            rc, message = _stop_message(e)
        except InternalError as e:  # our bug: the message says so and how to report it
            rc, message, failure = 1, f"shufflenet-edge: internal error: {e}", e
            native = cap.text()
        except Exception as e:  # noqa: BLE001  (unexpected: still one line unless --debug)
            if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in DEPENDENCY_MODULES:
                # an install without torch (runtimes only): this command needs the full install
                rc, message, failure = 1, f"shufflenet-edge: error: {_needs_message(args.command, e.name or '')}", e
            else:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                hint = "" if debug else " (run with --debug for the traceback)"
                rc, message, failure = 1, f"shufflenet-edge: error: {type(e).__name__}: {msg}{hint}", e
                native = cap.text()
        if debug and failure is not None:
            traceback.print_exception(type(failure), failure, failure.__traceback__)
    if native and native.strip():
        print("shufflenet-edge: what the native libraries printed before the failure:", file=sys.stderr)
        print("\n".join(native.rstrip().splitlines()[-40:]), file=sys.stderr)
    if message:
        print(message, file=sys.stderr)
    return rc


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
