"""What every exporter shares: output paths, atomic writes, the sidecar JSON, tool versions, progress."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from shufflenet_edge.errors import EdgeError
from shufflenet_edge.files import atomic_path, check_writable  # noqa: F401  (the exporters' import point)

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


def sidecar_path(artifact: str | os.PathLike[str]) -> Path:
    return Path(str(artifact) + ".json")


def sidecar_candidates(artifact: str | os.PathLike[str]) -> list[Path]:
    """Where a sidecar may sit: `model.tflite.json` (ours), `model.json` and `model.sidecar.json` (other tools)."""
    p = Path(artifact)
    return [c for c in (sidecar_path(p), p.with_suffix(".json"), p.with_name(p.stem + ".sidecar.json")) if c != p]


# The part of the sidecar that travels inside the artifact (TFLite metadata entry, ONNX metadata_props), so a
# bare .tflite/.onnx whose sidecar was lost still says what it is and how to feed it.
IDENTITY_KEYS = ("format", "model", "num_classes", "weights", "random_weights", "seed", "precision", "form",
                 "input", "output", "outputs", "preprocess", "labels", "layout_out", "source")
METADATA_KEY = "shufflenet_edge"


def identity(sidecar: dict[str, Any]) -> dict[str, Any]:
    return {k: sidecar[k] for k in IDENTITY_KEYS if k in sidecar}


def embed_identity(artifact: Path, info: dict[str, Any]) -> None:
    """Rewrite the artifact (atomically) with `identity(info)` embedded; tensors and ops are untouched."""
    ident = identity(info)
    payload = json.dumps(ident, sort_keys=True, default=str)
    fmt = Path(artifact).suffix.lower()
    if fmt == ".tflite":
        from shufflenet_edge.export.passes import metadata
        from shufflenet_edge.export.passes.graph import Graph

        g = Graph(Path(artifact).read_bytes())
        metadata.run(g, json.loads(payload))
        data = g.finish()
        with atomic_path(Path(artifact)) as tmp:
            tmp.write_bytes(data)
    elif fmt == ".onnx":
        import onnx

        m = onnx.load(str(artifact), load_external_data=False)
        props = [p for p in m.metadata_props if p.key != METADATA_KEY]
        del m.metadata_props[:]
        m.metadata_props.extend(props)
        m.metadata_props.add(key=METADATA_KEY, value=payload)
        with atomic_path(Path(artifact)) as tmp:
            onnx.save(m, str(tmp))
    else:
        raise EdgeError(f"cannot embed metadata in {artifact}: not a .tflite or .onnx file")


def read_embedded(artifact: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The identity embedded in a .tflite / .onnx by `embed_identity`, None if there is none."""
    p = Path(artifact)
    try:
        if p.suffix.lower() == ".tflite":
            from shufflenet_edge.export.passes import metadata

            return metadata.read(p.read_bytes())
        if p.suffix.lower() == ".onnx":
            import onnx

            m = onnx.load(str(p), load_external_data=False)
            for prop in m.metadata_props:
                if prop.key == METADATA_KEY:
                    data = json.loads(prop.value)
                    return data if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001  (a corrupt file: the caller's own loading names the problem)
        return None
    return None


def artifact_info(artifact: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, str | None]:
    """What an artifact is: (info, where it came from). The sidecar wins; else the embedded metadata; else None.

    `where` is the sidecar's path, or "embedded metadata of <file>".
    """
    from shufflenet_edge.export.sidecar import Sidecar

    for c in sidecar_candidates(artifact):
        if c.is_file():
            return Sidecar.from_dict(_read_json_object(c)).to_dict(), str(c)
    emb = read_embedded(artifact)
    if emb is not None:
        return Sidecar.from_dict(emb).to_dict(), f"embedded metadata of {Path(artifact).name}"
    return None, None


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EdgeError(f"cannot read sidecar {path}: {msg}") from e
    if not isinstance(data, dict):
        raise EdgeError(f"sidecar {path} is not a JSON object")
    return data


def missing_identity_hint(artifact: str | os.PathLike[str]) -> str:
    """Why an artifact says nothing about itself, and what to pass. A file that does not parse (cut short by a copy,
    or not a model at all) says so, instead of blaming the metadata it cannot hold."""
    broken = _unreadable(Path(artifact))
    if broken:
        return f"{artifact} is {broken}: copy or export it again"
    return (f"{artifact} has no sidecar ({sidecar_path(artifact).name}) and no embedded shufflenet-edge metadata: "
            "pass --model NAME (and --weights FILE if it was exported from trained weights; the input size is read "
            "from the artifact), or re-export it with shufflenet-edge")


def _unreadable(p: Path) -> str | None:
    """'truncated or not a TFLite file' (or ONNX) when the file does not parse whole; None when it does."""
    ext = p.suffix.lower()
    try:
        data = p.read_bytes()
    except OSError:
        return None
    if ext == ".tflite":
        what = "truncated or not a TFLite file"
        if len(data) < 8 or data[4:8] != b"TFL3":
            return f"{what} (no TFL3 identifier)"
        try:
            from ai_edge_litert import schema_py_generated as schema

            model = schema.ModelT.InitFromPackedBuf(data, 0)
        except ImportError:
            return None
        except Exception:  # noqa: BLE001  (flatbuffers raises assorted errors on a cut-short buffer)
            return f"{what} ({len(data)} bytes; the flatbuffer points past its end)"
        for b in model.buffers or []:  # weights stored after the flatbuffer (models over 2 GB, some converters)
            if (b.offset or 0) > 1 and b.offset + (b.size or 0) > len(data):
                return f"{what} ({len(data)} bytes; a weight buffer ends at byte {b.offset + b.size})"
        return None
    if ext == ".onnx":
        try:
            import onnx

            onnx.load_from_string(data)
        except ImportError:
            return None
        except Exception:  # noqa: BLE001  (protobuf DecodeError and friends)
            return f"truncated or not an ONNX file ({len(data)} bytes that do not parse as an ONNX model)"
    return None


def write_sidecar(artifact: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write `info` as the artifact's record (the typed Sidecar under the current schema); the record written."""
    from shufflenet_edge.export.sidecar import SCHEMA, Sidecar

    record = Sidecar.from_dict({**info, "schema": SCHEMA}).to_dict()
    with atomic_path(sidecar_path(artifact)) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def read_sidecar(artifact: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar JSON only (None if there is none); `artifact_info` also reads the embedded metadata."""
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    return _read_json_object(path)


def progress(enabled: bool = True) -> Any:
    """Progress on stderr, where users look: a rich spinner on a terminal; elsewhere (a CI log, a pipe, a file)
    plain lines, one when a stage starts and one when it ends, each with the seconds since the export began, and a
    "still running" line every $SHUFFLENET_EDGE_PROGRESS_EVERY seconds (default 30) of a long stage, so a log shows
    the export is alive. Silent when disabled (--quiet)."""
    import contextlib
    import threading
    import time

    from rich.console import Console

    from shufflenet_edge.console import err

    stream = err()
    console = Console(file=stream, quiet=not enabled)
    if not enabled or console.is_terminal:

        class _P:
            def step(self, text: str) -> Any:
                return console.status(text, spinner="dots")

            def log(self, text: str) -> None:
                console.print(text, highlight=False)

        return _P()
    try:
        every = float(os.environ.get("SHUFFLENET_EDGE_PROGRESS_EVERY") or 30)
    except ValueError:
        every = 30.0
    every = every if every > 0 else 30.0
    t0 = time.monotonic()
    lock = threading.Lock()

    def line(text: str) -> None:
        with lock, contextlib.suppress(OSError, ValueError):
            print(f"[{time.monotonic() - t0:6.1f} s] {text}", file=stream, flush=True)

    class _Plain:
        @contextlib.contextmanager
        def step(self, text: str) -> Any:
            start = time.monotonic()
            line(f"{text} ...")
            stop = threading.Event()

            def beat() -> None:
                while not stop.wait(every):
                    line(f"{text}: still running ({time.monotonic() - start:.0f} s)")

            beater = threading.Thread(target=beat, name="shufflenet-edge-progress", daemon=True)
            beater.start()
            finished = False
            try:
                yield
                finished = True
            finally:
                stop.set()
                beater.join()
                line(f"{text}: {'done' if finished else 'did not finish'} ({time.monotonic() - start:.1f} s)")

        def log(self, text: str) -> None:
            line(text)

    return _Plain()
