"""The `shufflenet-edge` command. Exit codes: 0 ok, 1 failure, 2 usage error."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from shufflenet_edge import __version__
from shufflenet_edge.errors import EdgeError, UsageError

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
        add_args(sp)
        sp.set_defaults(_handler=handler)
    return p


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


def main(argv: Sequence[str] | None = None) -> int:
    from shufflenet_edge.console import capture_native

    _quiet_native_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if not debug:
        warnings.simplefilter("ignore")
    rc, message, native = 0, None, None
    # Native libraries' stderr goes to a capture file unless --debug (shufflenet_edge/console.py).
    with capture_native(enabled=not debug) as cap:
        try:
            rc = int(args._handler(args) or 0)
        except UsageError as e:
            rc, message = 2, f"shufflenet-edge: error: {e}"
        except EdgeError as e:
            rc, message = 1, f"shufflenet-edge: error: {e}"
            log = cap.keep()
            if log:
                message += f" (native library output: {log})"
        except KeyboardInterrupt:
            rc, message = 130, "shufflenet-edge: interrupted"
        except Exception as e:  # noqa: BLE001  (unexpected: still one line unless --debug)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            rc, message = 1, f"shufflenet-edge: error: {type(e).__name__}: {msg} (run with --debug for the traceback)"
            native = cap.text()
        if debug and message and rc not in (0, 130):
            traceback.print_exc()
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
