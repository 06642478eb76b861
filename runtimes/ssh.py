"""The SSH target (Linux ARM boards): copy runner.py and the artifacts, run with the board's python3, read
JSON back, clean up.

Uses the user's own OpenSSH client and configuration (keys, ~/.ssh/config host aliases, ports, jump hosts):
plain `ssh` / `scp` argv lists, never a local shell string. Commands for the remote shell are built with
shlex.quote. Per target:

1. `ssh DEST 'mktemp -d'` (plus one sub-folder per artifact), 2. `scp` runner.py and each artifact (with
any ONNX external-data file) there, 3. `python3 runner.py --probe ...` to learn what the board has (numpy,
onnxruntime, ai-edge-litert / tflite-runtime), 4. one `python3 runner.py --bench ...` per (artifact,
runtime, threads), 5. `rm -rf` the temp folder, also after a failure.

A board that lacks numpy or a runtime gets error rows saying exactly what to `pip install` there. A
disconnect or timeout mid-run stops this target with a one-line error naming it (TargetError), keeping
the records measured before.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shufflenet_edge.runtimes.local import (
    RUNNER_PATH,
    Cooldown,
    Job,
    OnRecord,
    child_argv,
    last_line,
    parse_runner_output,
    record_from_runner,
    stamp,
)
from shufflenet_edge.runtimes.results import TargetError, describe_artifact, new_record

from shufflenet_edge.errors import EdgeError, UsageError

PIP_NAMES = {"numpy": "numpy", "onnxruntime": "onnxruntime", "litert": "ai-edge-litert",
             "tflite-runtime": "tflite-runtime"}


@dataclasses.dataclass(frozen=True)
class SshTarget:
    """`ssh://[user@]host[:port]`; host may be an alias from the user's ~/.ssh/config."""

    spec: str
    host: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_ssh_target(spec: str) -> SshTarget:
    u = urlsplit(spec)
    rule = "write ssh://[user@]host[:port], e.g. ssh://pi@raspberrypi.local:22"
    if u.scheme != "ssh" or not u.hostname:
        raise UsageError(f"bad SSH target {spec!r}: {rule}")
    if u.path not in ("", "/") or u.query or u.fragment or u.password is not None:
        raise UsageError(f"bad SSH target {spec!r}: no path, query or password allowed; {rule}")
    try:
        port = u.port
    except ValueError:
        raise UsageError(f"bad SSH target {spec!r}: the port must be a number from 1 to 65535") from None
    host = u.hostname if "[" not in (u.netloc or "") else u.netloc.rsplit("@", 1)[-1].split("]")[0].lstrip("[")
    for part, what in ((host, "host"), (u.username or "", "user")):
        # an argument starting with "-" would be read by ssh as an option
        if part.startswith("-") or any(c.isspace() for c in part):
            raise UsageError(f"bad SSH target {spec!r}: the {what} must not start with '-' or contain spaces")
    return SshTarget(spec=spec, host=host, user=u.username, port=port)


@dataclasses.dataclass
class SshOptions:
    options: list[str] = dataclasses.field(default_factory=list)  # each becomes "-o OPT", before our defaults
    jump: str | None = None  # -J
    config: str | None = None  # -F
    identity: str | None = None  # -i
    remote_python: str = "python3"
    connect_timeout: float = 15.0
    timeout: float = 600.0  # per measurement
    ssh: str = "ssh"
    scp: str = "scp"

    def common(self) -> list[str]:
        """Options shared by ssh and scp. User options come first: OpenSSH keeps the first value it gets."""
        out: list[str] = []
        if self.config:
            out += ["-F", self.config]
        if self.identity:
            out += ["-i", self.identity]
        if self.jump:
            out += ["-J", self.jump]
        for o in self.options:
            out += ["-o", o]
        given = {o.split("=", 1)[0].split()[0].lower() for o in self.options if o.strip()}
        defaults = {"BatchMode": "yes",  # never hang on a password prompt
                    "ConnectTimeout": f"{int(self.connect_timeout)}",
                    "ServerAliveInterval": "10", "ServerAliveCountMax": "3"}  # notice a board that vanished
        for k, v in defaults.items():
            if k.lower() not in given:
                out += ["-o", f"{k}={v}"]
        return out


def ssh_argv(t: SshTarget, o: SshOptions, remote_command: str) -> list[str]:
    port = ["-p", str(t.port)] if t.port else []
    return [o.ssh, "-T", *o.common(), *port, t.destination, remote_command]


def scp_argv(t: SshTarget, o: SshOptions, sources: Sequence[str | os.PathLike[str]], remote_dir: str) -> list[str]:
    port = ["-P", str(t.port)] if t.port else []
    # Absolute local paths: never read as an option (leading "-") or as host:path (a ":" after a "/" is local).
    srcs = [os.path.abspath(s) for s in sources]
    return [o.scp, "-q", "-p", *o.common(), *port, *srcs, f"{t.destination}:{remote_dir}/"]


def _remote(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


class _Session:
    def __init__(self, target: SshTarget, opts: SshOptions) -> None:
        self.t = target
        self.o = opts

    def run(self, remote_command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(ssh_argv(self.t, self.o, remote_command), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def copy(self, sources: Sequence[str | os.PathLike[str]], remote_dir: str, timeout: float) -> None:
        p = subprocess.run(scp_argv(self.t, self.o, sources, remote_dir), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise EdgeError(f"copy to {remote_dir} failed: {last_line(p.stderr) or f'scp exit code {p.returncode}'}")


def _board_python(py: str, probe: dict[str, Any]) -> str:
    exe = probe.get("python") or py
    return f"the board's python {exe} (Python {probe.get('python_version', '?')})"


def _connection_message(p: subprocess.CompletedProcess[str]) -> str:
    return last_line(p.stderr) or f"ssh exit code {p.returncode}"


def _needs(job_runtime: str, fmt: str | None) -> list[str]:
    if job_runtime == "auto":
        return ["litert", "tflite-runtime"] if fmt == "tflite" else ["onnxruntime"]
    return [job_runtime]


def _missing_for(job: Job, fmt: str | None, probe: dict[str, Any]) -> list[str]:
    """pip distributions the board must install for this job ([] if it can run)."""
    missing = list(probe.get("missing") or [])
    out = ["numpy"] if "numpy" in missing else []
    options = _needs(job.runtime, fmt)
    have = [r for r in options if PIP_NAMES[r] not in missing and r not in (probe.get("broken") or {})]
    if not have:
        out.append(PIP_NAMES[options[0]])
    return out


def run_ssh_target(target: str, jobs: Sequence[Job], *, runs: int, warmup: int, opts: SshOptions,
                   include_transfers: bool = False, on_record: OnRecord | None = None,
                   infos: dict[str, dict[str, Any]] | None = None, cooldown: float | Cooldown = 0.0,
                   profile: bool = False) -> list[dict[str, Any]]:
    """Measure every job on one board. Returns the records; raises TargetError (carrying the records
    measured so far plus an error row) when the connection fails, drops, or a run times out.
    `cooldown`: seconds of pause between measurements (or a Cooldown, which brings its own sleep function);
    `profile`: the runner adds a per-op profile. The board's runner records its CPU
    governor/frequencies/temperatures before and after each measurement."""
    t = parse_ssh_target(target)
    pause = cooldown if isinstance(cooldown, Cooldown) else Cooldown(cooldown)
    run = _SshRun(target, t, jobs, runs=runs, warmup=warmup, opts=opts, on_record=on_record, infos=infos)
    run.make_tmp()
    try:
        run.copy()
        probe = run.probe()
        run.measure(probe, pause, include_transfers=include_transfers, profile=profile)
        return run.records
    finally:
        run.cleanup()


class _SshRun:
    """The state of one run_ssh_target call: the session, the records so far, the board's temp folder."""

    def __init__(self, target: str, t: SshTarget, jobs: Sequence[Job], *, runs: int, warmup: int, opts: SshOptions,
                 on_record: OnRecord | None, infos: dict[str, dict[str, Any]] | None) -> None:
        self.target = target
        self.jobs = jobs
        self.runs = runs
        self.warmup = warmup
        self.opts = opts
        self.py = opts.remote_python
        self.on_record = on_record
        self.s = _Session(t, opts)
        self.infos = dict(infos or {})
        self.records: list[dict[str, Any]] = []
        self.setup_timeout = opts.connect_timeout + 60
        self.artifacts = list(dict.fromkeys(j.artifact for j in jobs))
        for a in self.artifacts:
            if a not in self.infos:
                self.infos[a] = describe_artifact(a, madds=False)
        # one sub-folder per artifact in the board's temp folder (names kept: ONNX external data)
        self.subdirs = {a: str(i) for i, a in enumerate(self.artifacts)}
        self.tmp = ""

    def emit(self, rec: dict[str, Any]) -> None:
        """Keep one record and hand it to on_record."""
        self.records.append(rec)
        if self.on_record:
            self.on_record(rec)

    def fail_rest(self, from_index: int, reason: str) -> None:
        """An error row for each job from from_index on."""
        for job in self.jobs[from_index:]:
            info = self.infos[job.artifact]
            self.emit(new_record(artifact=job.artifact, runtime=job.runtime, provider=job.provider,
                                 target=self.target, threads=job.threads, status="error", reason=reason,
                                 model=info.get("model"), precision=info.get("precision"), form=info.get("form"),
                                 madds=info.get("madds"), model_size_bytes=info.get("model_size_bytes"),
                                 runs=self.runs, warmup=self.warmup))

    def stop(self, msg: str, from_index: int = 0) -> TargetError:
        """Error rows for the jobs not measured, and the TargetError (with the records) to raise."""
        self.fail_rest(from_index, msg)
        return TargetError(self.target, msg, self.records)

    def make_tmp(self) -> None:
        """Step 1: a private temp folder on the board, one sub-folder per artifact."""
        mk = 'set -e; d=$(mktemp -d "${TMPDIR:-/tmp}/shufflenet-edge.XXXXXX"); cd "$d"; ' + (
            f"mkdir {' '.join(self.subdirs.values())}; " if self.subdirs else "") + 'pwd'
        try:
            p = self.s.run(mk, self.setup_timeout)
        except subprocess.TimeoutExpired:
            raise self.stop(f"no answer within {self.setup_timeout:g} s") from None
        if p.returncode != 0 or not p.stdout.strip():
            msg = f"cannot connect: {_connection_message(p)}" if p.returncode == 255 else \
                f"cannot make a temp folder (mktemp -d): {_connection_message(p)}"
            raise self.stop(msg)
        self.tmp = p.stdout.strip().splitlines()[-1]

    def copy(self) -> None:
        """Step 2: scp runner.py into the temp folder and each artifact (with its companions) into its sub-folder."""
        try:
            self.s.copy([RUNNER_PATH], self.tmp, self.setup_timeout)
            for a in self.artifacts:
                files = [Path(a), *self.infos[a].get("companions", [])]
                self.s.copy(files, f"{self.tmp}/{self.subdirs[a]}",
                            self.setup_timeout + os.path.getsize(a) / 1e6)  # >= 1 MB/s
        except (EdgeError, subprocess.TimeoutExpired) as e:
            msg = f"copy failed: {e}" if isinstance(e, EdgeError) else "copy timed out"
            raise self.stop(msg) from None

    def probe(self) -> dict[str, Any]:
        """Step 3: what the board's python has (runner.py --probe)."""
        py = self.py
        wanted = sorted({r for j in self.jobs for r in _needs(j.runtime, self.infos[j.artifact].get("format"))})
        try:
            p = self.s.run(f"cd {shlex.quote(self.tmp)} && {_remote(py, 'runner.py', '--probe', *wanted)}",
                           self.setup_timeout)
        except subprocess.TimeoutExpired:
            raise self.stop("the probe of the board's python timed out") from None
        probe = parse_runner_output(p.stdout)
        if probe is None:
            if p.returncode == 255:
                msg = f"connection lost: {_connection_message(p)}"
            elif p.returncode == 127:
                msg = f"no {py} on the board ({last_line(p.stderr)}); install python3 or pass --remote-python"
            else:
                msg = f"{py} on the board cannot run runner.py: {last_line(p.stderr) or f'exit code {p.returncode}'}"
            raise self.stop(msg)
        if not probe.get("python_ok", True):
            raise self.stop(f"the board's {py} is Python {probe.get('python_version')}; runner.py needs 3.8 or newer")
        return probe

    def measure(self, probe: dict[str, Any], pause: Cooldown, *, include_transfers: bool, profile: bool) -> None:
        """Step 4: one runner.py --bench per job; error rows saying what to pip install where the board lacks it."""
        py = self.py
        lacking: dict[str, list[str]] = {}
        for i, job in enumerate(self.jobs):
            info = self.infos[job.artifact]
            need = _missing_for(job, info.get("format"), probe)
            if need:
                lacking[job.artifact] = need
                self.emit_lacking(job, info, probe, need)
                continue
            self.measure_job(i, job, pause, include_transfers=include_transfers, profile=profile)
        if lacking:
            need = list(dict.fromkeys(n for v in lacking.values() for n in v))
            raise TargetError(self.target, f"{_board_python(py, probe)} lacks {', '.join(need)}: run "
                                           f"`{py} -m pip install {' '.join(need)}` there", self.records)

    def emit_lacking(self, job: Job, info: dict[str, Any], probe: dict[str, Any], need: list[str]) -> None:
        """The error row of a job the board cannot run: what to pip install there (and what fails to import)."""
        py = self.py
        broken = "; ".join(f"{k} fails to import: {v}" for k, v in (probe.get("broken") or {}).items()
                           if PIP_NAMES.get(k) in need or k in _needs(job.runtime, info.get("format")))
        reason = (f"{_board_python(py, probe)} lacks {', '.join(need)}: run "
                  f"`{py} -m pip install {' '.join(need)}` there" + (f" ({broken})" if broken else ""))
        runtime = job.runtime if job.runtime != "auto" else "litert"
        self.emit(new_record(artifact=job.artifact, runtime=runtime, provider=job.provider, target=self.target,
                             threads=job.threads, status="error", reason=reason, model=info.get("model"),
                             precision=info.get("precision"), form=info.get("form"),
                             model_size_bytes=info.get("model_size_bytes"), runs=self.runs, warmup=self.warmup,
                             environment=probe.get("environment") or {}, extra={"missing": need}))

    def measure_job(self, i: int, job: Job, pause: Cooldown, *, include_transfers: bool, profile: bool) -> None:
        """Run one job on the board and emit its record; a timeout or a lost connection stops the target."""
        opts = self.opts
        remote_art = f"{self.subdirs[job.artifact]}/{Path(job.artifact).name}"
        argv = child_argv(job, self.runs, self.warmup, python=self.py, runner="runner.py", time_limit=opts.timeout,
                          include_transfers=include_transfers, artifact_path=remote_art, profile=profile)
        cmd = f"cd {shlex.quote(self.tmp)} && exec {_remote(*argv)}"
        slept = pause.before_round()
        wall0 = time.time()
        started = time.monotonic()
        try:
            p = self.s.run(cmd, opts.timeout + opts.connect_timeout + 15)
        except subprocess.TimeoutExpired:
            msg = (f"timed out after {time.monotonic() - started:.0f} s on {Path(job.artifact).name} "
                   f"({job.runtime}, {job.threads} thread(s))")
            raise self.stop(msg, i) from None
        res = parse_runner_output(p.stdout)
        if res is None:
            if p.returncode == 255:
                msg = (f"connection lost during {Path(job.artifact).name} ({job.runtime}, {job.threads} "
                       f"thread(s)): {_connection_message(p)}")
                raise self.stop(msg, i)
            sig = f"exit code {p.returncode}"
            res = {"status": "error", "reason": f"runner crashed on the board ({sig}): "
                                                f"{last_line(p.stderr) or 'no output'}"}
        self.emit(stamp(record_from_runner(res, job, self.target, self.infos[job.artifact]), wall0, time.time(),
                        slept))

    def cleanup(self) -> None:
        """Step 5: remove the board's temp folder, also after a failure."""
        # best effort: after a disconnect the folder may remain, and we say nothing more
        try:
            self.s.run(_remote("rm", "-rf", "--", self.tmp), self.opts.connect_timeout + 10)
        except (subprocess.TimeoutExpired, OSError):
            pass


def infer_ssh(target: str, artifact: str, x: Any, *, opts: SshOptions, runtime: str = "auto",
              threads: int = 1) -> tuple[Any, dict[str, Any]]:
    """Parity on a board: the inputs travel with the artifact, the board's runtime computes the outputs
    (runner.py --infer-npz), they come back. Returns (float outputs (N, K), the runner's JSON record).
    One-line EdgeErrors for every failure; the board's temporary folder is removed."""
    import io
    import tempfile

    import numpy as np

    t = parse_ssh_target(target)
    s = _Session(t, opts)
    setup_timeout = opts.connect_timeout + 60
    try:
        p = s.run('set -e; d=$(mktemp -d "${TMPDIR:-/tmp}/shufflenet-edge.XXXXXX"); cd "$d"; pwd', setup_timeout)
    except subprocess.TimeoutExpired:
        raise EdgeError(f"{target}: no answer within {setup_timeout:g} s") from None
    if p.returncode != 0 or not p.stdout.strip():
        raise EdgeError(f"{target}: cannot connect: {_connection_message(p)}" if p.returncode == 255 else
                        f"{target}: cannot make a temp folder (mktemp -d): {_connection_message(p)}")
    tmp = p.stdout.strip().splitlines()[-1]
    try:
        with tempfile.TemporaryDirectory() as td:
            inp = Path(td) / "inputs.npz"
            np.savez(inp, x=np.ascontiguousarray(x))
            try:
                s.copy([RUNNER_PATH, RUNNER_PATH.with_name("ort_session.py"), artifact, inp], tmp,  # OnnxRunner imports it
                       setup_timeout + os.path.getsize(artifact) / 1e6)
            except subprocess.TimeoutExpired:
                raise EdgeError(f"{target}: copy timed out") from None
        py = opts.remote_python
        argv = [py, "runner.py", Path(artifact).name, "--infer-npz", "inputs.npz", "--out-npz", "outputs.npz",
                "--runtime", runtime, "--threads", str(threads)]
        if opts.timeout:
            argv += ["--time-limit", f"{opts.timeout:g}"]
        try:
            p = s.run(f"cd {shlex.quote(tmp)} && exec {_remote(*argv)}", (opts.timeout or 600) + opts.connect_timeout + 15)
        except subprocess.TimeoutExpired:
            raise EdgeError(f"{target}: the board's runner timed out on {Path(artifact).name}") from None
        res = parse_runner_output(p.stdout)
        if res is None:
            if p.returncode == 255:
                raise EdgeError(f"{target}: connection lost: {_connection_message(p)}")
            if p.returncode == 127:
                raise EdgeError(f"{target}: no {py} on the board ({last_line(p.stderr)}); install python3 or pass --remote-python")
            raise EdgeError(f"{target}: runner crashed on the board (exit code {p.returncode}): {last_line(p.stderr) or 'no output'}")
        if res.get("status") != "ok":
            missing = res.get("missing") or []
            hint = f": run `{py} -m pip install {' '.join(missing)}` there" if missing else ""
            raise EdgeError(f"{target}: {res.get('reason') or res.get('status')}{hint}")
        q = subprocess.run(ssh_argv(t, opts, f"cat {shlex.quote(tmp + '/outputs.npz')}"), capture_output=True,
                           timeout=setup_timeout, stdin=subprocess.DEVNULL)
        if q.returncode != 0:
            raise EdgeError(f"{target}: cannot read the outputs back: {last_line(q.stderr.decode(errors='replace'))}")
        try:
            with np.load(io.BytesIO(q.stdout)) as z:
                y = np.asarray(z["y"], np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise EdgeError(f"{target}: the outputs that came back are not readable: {e}") from e
        return y, res
    finally:
        try:
            s.run(f"rm -rf {shlex.quote(tmp)}", setup_timeout)
        except subprocess.TimeoutExpired:
            pass
