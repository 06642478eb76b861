"""Errors the CLI turns into one-line messages and non-zero exit codes."""


class EdgeError(Exception):
    """A failure the user can act on; the CLI prints `error: <message>` and exits 1."""


class UsageError(EdgeError):
    """A bad argument value; the CLI exits 2."""
