"""Errors the CLI turns into one-line messages and non-zero exit codes.

Three kinds, so a user can tell what to do: `UsageError` (a bad flag or value: fix the command), `EdgeError`
(something about the model, the data or the machine that the user can act on) and `InternalError` (an invariant
of ours broke: a pass moved an int8 value, the fold's self-check failed; not the user's fault).
"""

class EdgeError(Exception):
    """A failure the user can act on; the CLI prints `error: <message>` and exits 1."""


class UsageError(EdgeError):
    """A bad argument value; the CLI exits 2."""


class InternalError(Exception):
    """A broken invariant of shufflenet-edge itself. Not an EdgeError: nothing the user changes fixes it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}. This is a bug in shufflenet-edge, not in your model or command: please report "
                         "it on the project's issue tracker with the command, `shufflenet-edge --version` and the output of "
                         "`--debug`")


def eval_mode(module):  # type: ignore[no-untyped-def]
    """`module` in eval mode. Never use the return value of `.eval()`/`.train()`: OpenMMLab's modules override
    `train(mode)` without returning self, so `.eval()` is None there."""
    module.eval()
    return module
