#!/usr/bin/env python3
"""Prove runner.py and our artifacts work on aarch64: real ARM kernels under qemu-user emulation.

    python benchmarks/arm_qemu.py [ARTIFACT ...] [--cache DIR] [--inputs N] [--json OUT]

Builds (once, cached under $SHUFFLENET_EDGE_CACHE/arm64, default ~/.cache/shufflenet-edge/arm64, or --cache) an arm64 Python from Debian
bookworm's packages (no debootstrap: `apt-get download` + `dpkg -x`) and a site folder of the aarch64
wheels of numpy, ai-edge-litert and onnxruntime from PyPI (the versions installed here), then runs the
same runner.py that the SSH target copies to boards, under `qemu-aarch64-static`, on each artifact, and
compares with the x86 run of the same file on the same inputs:

    fp32: max |logit difference| <= 1e-4;  int8: top-1 identical on every input.

Emulated timings mean nothing (about 100x slower than native); the numbers must match. Without
ARTIFACT arguments it exports small ones itself (shufflenet_v2_x0_5 at 64x64: fp32 and int8, .onnx and
.tflite) with `shufflenet-edge export`, or, where that command cannot, with tests/fixtures/make_artifacts.py.

Needs: Debian (apt-get, dpkg), `qemu-user-static`, root the first time (`dpkg --add-architecture arm64`
and `apt-get update`), network access to Debian and PyPI the first time. The trap: onnxruntime segfaults
under qemu unless the sysroot holds an ARM-format proc/cpuinfo (qemu's -L redirects /proc/cpuinfo there),
so one is written. Exit code 0 when every artifact passes, 1 otherwise, 2 when the set-up is impossible.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "runtimes" / "runner.py"
sys.path.insert(0, str(REPO))  # run as a script from a checkout: the package's cache rule
from shufflenet_edge.paths import cache_dir, cache_lock  # noqa: E402

DEFAULT_CACHE = cache_dir("arm64")
PYVER = "3.11"  # Debian bookworm's python3.11; the wheels are cp311
DEBS = (
    "libc6 libgcc-s1 libstdc++6 libgomp1 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 "
    "libuuid1 libncursesw6 libtinfo6 libreadline8 libcrypt1 libdb5.3 libnsl2 libtirpc3 libgssapi-krb5-2 "
    "libk5crypto3 libkrb5-3 libkrb5support0 libkeyutils1 libcom-err2 libzstd1 libpython3.11-minimal "
    "libpython3.11-stdlib python3.11-minimal"
).split()
# Runtimes pinned to what is installed here (so x86 and ARM run the same release), plus their dependencies.
PINNED = ("numpy", "ai-edge-litert", "onnxruntime", "ml_dtypes", "protobuf", "flatbuffers")
UNPINNED = ("typing-extensions", "tqdm", "backports.strenum", "packaging")
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
FP32_TOL = 1e-4


class SetupError(Exception):
    """The emulation cannot be set up here (exit 2, with what to do)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------------------------------------------
# sysroot

def _arm_cpuinfo() -> str:
    """An ARM-format /proc/cpuinfo (Neoverse-N1 fields), one block per possible CPU."""
    n = 1
    try:
        spec = Path("/sys/devices/system/cpu/possible").read_text().strip()
        n = 0
        for part in spec.split(","):
            a, _, b = part.partition("-")
            n += int(b or a) - int(a) + 1
    except (OSError, ValueError):
        n = os.cpu_count() or 1
    block = ("processor\t: {i}\nBogoMIPS\t: 50.00\n"
             "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
             "dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
             "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n")
    return "".join(block.format(i=i) for i in range(n))


def ensure_sysroot(cache: Path) -> Path:
    with cache_lock(cache / "sysroot"):  # two processes (test workers) build it once
        return _ensure_sysroot(cache)


def _ensure_sysroot(cache: Path) -> Path:
    root = cache / "sysroot"
    python = root / "usr" / "bin" / f"python{PYVER}"
    if python.is_file():
        return root
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise SetupError("needs Debian's apt-get and dpkg to build the arm64 sysroot")
    foreign = run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    is_root = os.geteuid() == 0
    if "arm64" not in foreign:
        if not is_root:
            raise SetupError("arm64 packages are not enabled: run as root once, or "
                             "`sudo dpkg --add-architecture arm64 && sudo apt-get update`")
        log("arm_qemu: dpkg --add-architecture arm64 && apt-get update")
        subprocess.run(["dpkg", "--add-architecture", "arm64"], check=True)
        if run(["apt-get", "update", "-qq"]).returncode != 0:
            raise SetupError("apt-get update failed (network?)")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    names = [f"{d}:arm64" for d in DEBS]
    p = run(["apt-get", "download", "-qq", *names], cwd=debs)
    if p.returncode != 0 and is_root:
        log("arm_qemu: apt-get update (arm64 package lists)")
        run(["apt-get", "update", "-qq"])
        p = run(["apt-get", "download", "-qq", *names], cwd=debs)
    if p.returncode != 0:
        raise SetupError(f"apt-get download of the arm64 packages failed: {p.stderr.strip().splitlines()[-1:]}")
    tmp = Path(tempfile.mkdtemp(prefix="sysroot.", dir=cache))
    for deb in sorted(debs.glob("*_arm64.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True)
    (tmp / "proc").mkdir(exist_ok=True)
    (tmp / "proc" / "cpuinfo").write_text(_arm_cpuinfo())
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    if not python.is_file():
        raise SetupError(f"no {python} after unpacking the packages")
    return root


# ---------------------------------------------------------------------------------------------------
# wheels

def _host_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def ensure_site(cache: Path) -> tuple[Path, dict[str, str]]:
    with cache_lock(cache / "site"):
        return _ensure_site(cache)


def _ensure_site(cache: Path) -> tuple[Path, dict[str, str]]:
    reqs = []
    for d in PINNED:
        v = _host_version(d)
        reqs.append(f"{d}=={v}" if v else d)
    reqs += list(UNPINNED)
    tag = "-".join(r.replace("==", "_") for r in reqs[:3])
    site = cache / f"site-{tag}"
    stamp = site / ".complete"
    if not stamp.is_file():
        wheels = cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", PYVER, "--implementation", "cp", "-d", str(wheels)]
        for plat in PLATFORMS:
            cmd += ["--platform", plat]
        log(f"arm_qemu: pip download (aarch64, cp311): {' '.join(reqs)}")
        p = run(cmd + reqs)
        if p.returncode != 0:
            raise SetupError(f"pip download of the aarch64 wheels failed: {p.stderr.strip().splitlines()[-1:]}")
        tmp = Path(tempfile.mkdtemp(prefix="site.", dir=cache))
        for r in reqs:
            name = r.split("==")[0].replace("-", "_").replace(".", "_").lower()
            ver = r.split("==")[1] if "==" in r else None
            cands = [w for w in wheels.glob("*.whl")
                     if w.name.split("-")[0].replace(".", "_").lower() == name
                     and (ver is None or w.name.split("-")[1] == ver)
                     and ("aarch64" in w.name or w.name.endswith("-none-any.whl"))]
            if not cands:
                raise SetupError(f"no aarch64/cp311 wheel of {r} was downloaded")
            with zipfile.ZipFile(sorted(cands)[-1]) as z:
                z.extractall(tmp)
        if site.exists():
            shutil.rmtree(site)
        tmp.rename(site)
        stamp.write_text("ok\n")
    versions = {}
    for d in ("numpy", "ai-edge-litert", "onnxruntime"):
        found = list(site.glob(f"{d.replace('-', '_')}-*.dist-info"))
        versions[d] = found[0].name[: -len(".dist-info")].split("-")[1] if found else "?"
    return site, versions


# ---------------------------------------------------------------------------------------------------
# artifacts

def export_small(out: Path) -> list[Path]:
    """fp32 and int8, .onnx and .tflite of shufflenet_v2_x0_5 at 64x64."""
    out.mkdir(parents=True, exist_ok=True)
    model, size = "shufflenet_v2_x0_5", 64
    paths = []
    cli = shutil.which("shufflenet-edge") or str(Path(sys.executable).with_name("shufflenet-edge"))
    for target in ("onnx", "tflite"):
        for int8 in (False, True):
            p = out / f"{model}_{size}_{'int8' if int8 else 'fp32'}.{target}"
            if not p.is_file():
                cmd = [cli, "export", "--model", model, "--target", target, "--input-size", str(size),
                       "--out", str(p), "--quiet"] + (["--int8"] if int8 else [])
                log(f"arm_qemu: {' '.join(cmd[1:])}")
                r = run(cmd)
                if r.returncode != 0 or not p.is_file():
                    log(f"arm_qemu: export failed ({(r.stderr.strip().splitlines() or ['?'])[-1]}); "
                        "converting with tests/fixtures/make_artifacts.py instead")
                    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
                    from make_artifacts import make_artifacts  # type: ignore[import-not-found]

                    kind = f"{'int8' if int8 else 'fp32'}.{target}"
                    made = make_artifacts(out, model=model, size=size, kinds=(kind,))[kind]
                    made.rename(p)
                    side = Path(str(made) + ".json")
                    if side.is_file():
                        side.rename(Path(str(p) + ".json"))
            paths.append(p)
    return paths


def precision_of(path: Path) -> str:
    try:
        from shufflenet_edge.runtimes.results import describe_artifact

        return describe_artifact(str(path), madds=False).get("precision") or "fp32"
    except ImportError:
        return "int8" if "int8" in path.name else "fp32"


# ---------------------------------------------------------------------------------------------------
# runs

def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def qemu_cmd(sysroot: Path) -> list[str]:
    q = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not q:
        raise SetupError("qemu-aarch64-static not found: apt-get install -y qemu-user-static")
    return [q, "-L", str(sysroot), str(sysroot / "usr" / "bin" / f"python{PYVER}")]


def arm_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", QEMU_CPU="neoverse-n1", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def run_outputs(prefix: list[str], env: dict[str, str] | None, artifact: Path, x_path: Path,
                timeout: float) -> tuple[np.ndarray, dict[str, Any]]:
    p = run([*prefix, str(RUNNER), str(artifact), "--input-npy", str(x_path)], env=env, timeout=timeout)
    res = _last_json(p.stdout)
    if res is None or res.get("status", "ok") != "ok" or "output" not in res:
        why = (res or {}).get("reason") or (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise RuntimeError(f"runner failed on {artifact.name}: {why}")
    return np.asarray(res["output"], dtype=np.float32), res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="aarch64 parity of runner.py and artifacts under qemu-user")
    ap.add_argument("artifacts", nargs="*", type=Path)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"sysroot/wheel cache (default {DEFAULT_CACHE})")
    ap.add_argument("--inputs", type=int, default=4, help="random inputs per artifact (default 4)")
    ap.add_argument("--bench-runs", type=int, default=2,
                    help="also run runner.py --bench with this many runs under qemu (0: skip); timings meaningless")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per emulated run")
    ap.add_argument("--json", type=Path, help="write the parity numbers here")
    a = ap.parse_args(argv)
    t_start = time.monotonic()
    try:
        qemu = qemu_cmd(Path("/nonexistent"))  # fails early when qemu is missing
        a.cache.mkdir(parents=True, exist_ok=True)
        sysroot = ensure_sysroot(a.cache)
        site, arm_versions = ensure_site(a.cache)
        qemu = qemu_cmd(sysroot)
    except (SetupError, subprocess.CalledProcessError, OSError) as e:
        print(f"arm_qemu: cannot set up the aarch64 emulation: {e}", file=sys.stderr)
        return 2
    log(f"arm_qemu: sysroot and wheels ready in {time.monotonic() - t_start:.0f} s ({a.cache})")
    env = arm_env(site)
    p = run([*qemu, "-c", "import platform, numpy; print(platform.machine(), platform.python_version(), numpy.__version__)"],
            env=env, timeout=a.timeout)
    if p.returncode != 0:
        print(f"arm_qemu: the emulated python does not start: {p.stderr.strip()[-300:]}", file=sys.stderr)
        return 2
    log(f"arm_qemu: emulated python: {p.stdout.strip()}")

    artifacts = list(a.artifacts) or export_small(a.cache / "artifacts")
    for art in artifacts:
        if not art.is_file():
            print(f"arm_qemu: artifact not found: {art}", file=sys.stderr)
            return 2
    sys.path.insert(0, str(RUNNER.parent))
    import runner  # type: ignore[import-not-found]  # the very file the boards get

    rows = []
    ok_all = True
    with tempfile.TemporaryDirectory(prefix="arm_qemu.") as td:
        for art in artifacts:
            prec = precision_of(art)
            r = runner.open_artifact(str(art))
            shape = [s if s > 0 else 1 for s in r.input_shape]
            rng = np.random.default_rng(0)
            x = rng.standard_normal((a.inputs, *shape[1:])).astype(np.float32)
            x_path = Path(td) / f"{art.stem}.npy"
            np.save(x_path, x)
            row: dict[str, Any] = {"artifact": str(art), "precision": prec, "runtime": r.runtime, "inputs": a.inputs}
            try:
                t0 = time.monotonic()
                y86, _ = run_outputs([sys.executable], None, art, x_path, a.timeout)
                t1 = time.monotonic()
                yarm, res = run_outputs(qemu, env, art, x_path, a.timeout)
                t2 = time.monotonic()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                row.update(status="error", reason=str(e))
                ok_all = False
                rows.append(row)
                print(f"{art.name}: ERROR {e}")
                continue
            diff = float(np.max(np.abs(y86 - yarm)))
            top86, toparm = y86.argmax(-1), yarm.argmax(-1)
            agree = int(np.sum(top86 == toparm))
            if prec == "int8":
                passed = agree == len(top86)
                rule = "top-1 identical"
            else:
                passed = diff <= FP32_TOL
                rule = f"max |diff| <= {FP32_TOL:g}"
            row.update(status="pass" if passed else "fail", rule=rule, max_abs_diff=diff,
                       max_abs_logit=float(np.max(np.abs(y86))), top1_agree=agree,
                       arm_runtime_version=res.get("version"), x86_seconds=round(t1 - t0, 1),
                       arm_seconds=round(t2 - t1, 1))
            if a.bench_runs > 0:
                b = run([*qemu, str(RUNNER), str(art), "--bench", "--runs", str(a.bench_runs), "--warmup", "0"],
                        env=env, timeout=a.timeout)
                bres = _last_json(b.stdout) or {}
                row["arm_bench"] = {"status": bres.get("status", "error"), "machine": (bres.get("environment") or {}).get("machine"),
                                    "cpu_model": (bres.get("environment") or {}).get("cpu_model"),
                                    "median_ms_emulated": float(np.median(bres["times_ms"])) if bres.get("times_ms") else None,
                                    "reason": bres.get("reason")}
                if bres.get("status") != "ok":
                    row["status"] = "fail"
                    passed = False
            ok_all &= passed
            rows.append(row)
            bench = row.get("arm_bench", {})
            print(f"{art.name:40s} {prec:5s} {r.runtime:12s} max|x86-arm| {diff:.3e}  top-1 {agree}/{len(top86)}  "
                  f"[{rule}] {'PASS' if passed else 'FAIL'}"
                  + (f"  (bench on {bench.get('machine')}: {bench.get('status')})" if bench else ""), flush=True)
    summary: dict[str, Any] = {"host": {"machine": os.uname().machine, "numpy": np.__version__,
                        "onnxruntime": _host_version("onnxruntime"), "ai-edge-litert": _host_version("ai-edge-litert")},
               "arm": {"emulator": Path(qemu[0]).name, "cpu": "neoverse-n1", "python": PYVER, **arm_versions},
               "seconds": round(time.monotonic() - t_start, 1), "results": rows, "passed": ok_all}
    arm = summary["arm"]
    print(f"aarch64 ({arm['emulator']}, cpu {arm['cpu']}, Python {PYVER}, numpy {arm['numpy']}, ai-edge-litert "
          f"{arm['ai-edge-litert']}, onnxruntime {arm['onnxruntime']}) vs {summary['host']['machine']}: "
          f"{'ALL PASS' if ok_all else 'FAILED'} in {summary['seconds']} s")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
