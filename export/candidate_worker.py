"""A second candidate of ``--form auto`` converted in a child process beside the folded one.

A litert-torch conversion is single-threaded Python work (about 20 s for ShuffleNetV2 1.0x here, most of it
torch.export's decompositions), and `--form auto` on a ShuffleNetV2 converts two graphs: the folded one and the
planned channel order (shufflenet_edge.channel_plan). On a machine with two or more CPUs they run side by side:
the child is a fresh interpreter (``python -m``, so it never re-runs the user's
script the way a multiprocessing spawn would), it reads the model, the example input and the calibration images
from a ``torch.save`` file, and writes the converted flatbuffer. Anything that goes wrong there (a model that does
not pickle, a crash, one CPU only) returns None and the exporter converts the candidate in its own process as
before, so this only ever changes the wall time.

The child never outlives the export: the exporter kills it and removes its temporary folder on every way out
(an error, Ctrl-C, SIGTERM and SIGHUP, which the CLI turns into the same unwinding), and on Linux the child also
asks the kernel to kill it if the exporting process dies without unwinding (SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from shufflenet_edge.errors import eval_mode


class ChildConversion:
    """A running child conversion; `result()` waits for it: the flatbuffer bytes, or None."""

    def __init__(self, proc: subprocess.Popen[bytes], folder: tempfile.TemporaryDirectory[str], out: Path,
                 log: Path) -> None:
        self.proc, self.folder, self.out, self.log = proc, folder, out, log
        self.error: str | None = None  # the end of the child's output when it failed
        self.refused: str | None = None  # the converter's own refusal of the model (converting again would repeat it)
        # int8: the child's PT2E simulation on each probe input set (name -> its outputs), so the exporter need not
        # calibrate the same graph again to check against it
        self.sim_outputs: dict[str, list[Any]] = {}

    def result(self, timeout: float = 1800.0) -> bytes | None:
        try:
            rc = self.proc.wait(timeout=timeout)
            if rc == 0 and self.out.is_file():
                sims = self.out.with_name("sim_outputs.pt")
                if sims.is_file():
                    self.sim_outputs = torch.load(sims, weights_only=False)
                return self.out.read_bytes()
            refused = self.out.with_name("refused.txt")
            if rc == REFUSED_EXIT and refused.is_file():
                self.refused = refused.read_text(errors="replace")
            self.error = f"exit code {rc}: " + self.log.read_text(errors="replace")[-2000:]
            return None
        except subprocess.TimeoutExpired:
            self.error = f"timed out after {timeout:.0f} s"
            return None
        finally:  # timed out or interrupted while waiting: the child goes too
            self.cancel()

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.folder.cleanup()


def start_conversion(model: torch.nn.Module, rank4: list[int] | None, layout: str, x: torch.Tensor,
                    calib: Any, quant: dict[str, Any] | None, probes: dict[str, Any] | None = None
                    ) -> ChildConversion | None:
    """Start converting `model` (NHWC wrapper when `layout` is nhwc; int8 when `quant` is given, with
    `calib` in the converted model's layout, and the simulation's outputs on each of `probes`, input arrays in that
    layout, kept in `sim_outputs`). None when a child cannot help (one CPU) or the model does not pickle."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or os.environ.get("SHUFFLENET_EDGE_SERIAL_CANDIDATES"):
        return None
    folder = tempfile.TemporaryDirectory(prefix="shufflenet-edge-candidate-")
    proc: subprocess.Popen[bytes] | None = None
    try:  # stopped part-way (Ctrl-C, SIGTERM): the folder and a started child go before the stop propagates
        payload, out, log = (Path(folder.name) / n for n in ("job.pt", "candidate.tflite", "child.log"))
        # A --model-file module is pickled by reference to its module: the child imports the same files under the
        # same names before it unpickles (the names are stable across processes: see api.import_model_file).
        from shufflenet_edge.api import user_module_files

        (Path(folder.name) / "modules.json").write_text(json.dumps(user_module_files()))
        try:
            torch.save({"model": model, "rank4": rank4, "layout": layout, "x": x, "calib": calib, "quant": quant,
                        "probes": probes or {}}, payload)
        except Exception:  # noqa: BLE001  (a module that does not pickle: convert it in this process)
            folder.cleanup()
            return None
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
                   **{PARENT_ENV: str(os.getpid())})
        try:
            with open(log, "wb") as logf:
                proc = subprocess.Popen([sys.executable, "-m", "shufflenet_edge.export.candidate_worker", str(payload),
                                         str(out)], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                        env=env)
        except OSError:  # cannot start a process here: convert in this one
            folder.cleanup()
            return None
        return ChildConversion(proc, folder, out, log)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        folder.cleanup()
        raise


PARENT_ENV = "SHUFFLENET_EDGE_CANDIDATE_PARENT"
REFUSED_EXIT = 3  # the child's exit code when the converter refused the model (its reason in refused.txt)


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when the exporting process dies (PR_SET_PDEATHSIG), so a
    parent killed without unwinding (SIGKILL, a crash) leaves no conversion running; if it is already gone, exit."""
    parent = int(os.environ.get(PARENT_ENV) or 0)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover (no libc prctl)
            pass
    if parent and os.getppid() != parent:
        os._exit(1)


def main(argv: list[str]) -> int:
    payload, out = argv
    _die_with_parent()
    torch.set_num_threads(1)
    from shufflenet_edge.api import import_model_file

    for path in json.loads((Path(payload).parent / "modules.json").read_text()).values():
        import_model_file(Path(path))
    job = torch.load(payload, weights_only=False)
    from shufflenet_edge.export.tflite_export import _nhwc, convert
    from shufflenet_edge.export.tflite_quantize import pt2e_quantize

    model = eval_mode(job["model"])
    wrapped = _nhwc(model, job["rank4"]) if job["layout"] == "nhwc" else model
    try:
        if job["quant"] is not None:
            sim, quantizer = pt2e_quantize(wrapped, job["x"], job["calib"], **job["quant"])
            buf = convert(sim, job["x"], quantizer)
            if job["probes"]:
                from shufflenet_edge.export.verify import torch_outputs

                torch.save({k: torch_outputs(sim, v) for k, v in job["probes"].items()},
                           Path(out).with_name("sim_outputs.pt"))
        else:
            buf = convert(wrapped, job["x"])
    except Exception as e:  # noqa: BLE001  (the converter refused the model: the parent says so, it does not retry)
        from shufflenet_edge.export.pipeline import failure_line

        Path(out).with_name("refused.txt").write_text(failure_line(e))
        return REFUSED_EXIT
    tmp = Path(f"{out}.partial")
    tmp.write_bytes(buf)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
