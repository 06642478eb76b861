"""Where an artifact runs: one parser for every target spec the commands take.

    local                      this machine
    ssh://[user@]host[:port]   a Linux board over SSH (runtimes/ssh.py)
    adb | adb:SERIAL           an Android phone over adb (runtimes/adb.py)

`parse_target(spec, options)` returns a `Target` whose options are typed (`SshOptions`, `AdbOptions`); export
tuning, parity, bench and guidelines all go through it, so a bad spec is the same one-line error everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shufflenet_edge.errors import UsageError

TARGET_SPECS = "local, ssh://user@host[:port] or adb[:SERIAL]"


@dataclasses.dataclass(frozen=True)
class AdbOptions:
    """How to reach and measure on a phone. `benchmark_binary`: TFLite's benchmark_model and/or
    onnxruntime_perf_test built for the phone; `cpu_mask`: taskset mask (default: the big cores)."""

    adb: str | None = None
    benchmark_binary: tuple[str, ...] = ()
    cpu_mask: str | None = None
    delegate: str = "cpu"  # .tflite on the phone: XNNPACK (cpu) or the GPU delegate
    provider: str = "cpu"  # onnxruntime_perf_test -e
    use_app: bool = False
    timeout: float | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # bench's own options the adb runner reads (profile, cooldown, ...)

    def as_runner_options(self) -> dict[str, Any]:
        """The option names runtimes/adb.py reads."""
        out: dict[str, Any] = {"adb": self.adb, "benchmark_binary": list(self.benchmark_binary) or None,
                               "cpu_mask": self.cpu_mask, "adb_delegate": self.delegate,
                               "adb_provider": self.provider, "use_app": self.use_app}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        out.update(dict(self.extra))
        return out


@dataclasses.dataclass(frozen=True)
class Target:
    kind: str  # local | ssh | adb
    spec: str
    serial: str | None = None  # adb:SERIAL
    options: Any = None  # SshOptions for ssh, AdbOptions for adb, None for local

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def ssh_target(self) -> Any:
        from shufflenet_edge.runtimes.ssh import parse_ssh_target

        return parse_ssh_target(self.spec)


def parse_target(spec: str, options: Any = None) -> Target:
    """`spec` -> Target; a spec that is none of the three is a UsageError naming them. `options`: the target's
    typed options (None = its defaults)."""
    spec = (spec or "").strip()
    if spec == "local":
        return Target("local", spec)
    if spec.startswith("ssh://"):
        from shufflenet_edge.runtimes.ssh import SshOptions, parse_ssh_target

        parse_ssh_target(spec)  # one-line UsageError for a bad host, port or user
        if options is not None and not isinstance(options, SshOptions):
            raise TypeError(f"options of an ssh target must be SshOptions, got {type(options).__name__}")
        return Target("ssh", spec, options=options or SshOptions())
    if spec == "adb" or spec.startswith("adb:"):
        serial = spec[4:] or None if spec.startswith("adb:") else None
        if spec.startswith("adb:") and not serial:
            raise UsageError(f"bad adb target {spec!r}: write adb or adb:SERIAL")
        if serial is not None and (serial.startswith("-") or any(c.isspace() for c in serial)):
            raise UsageError(f"bad adb serial {serial!r}: it must not start with '-' or contain spaces")
        if options is not None and not isinstance(options, AdbOptions):
            raise TypeError(f"options of an adb target must be AdbOptions, got {type(options).__name__}")
        return Target("adb", spec, serial=serial, options=options or AdbOptions())
    raise UsageError(f"unknown target {spec!r}: {TARGET_SPECS}")
