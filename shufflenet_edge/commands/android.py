"""`android-assets`: the one step that puts a model, its labels and its preprocessing constants into the app.

    shufflenet-edge android-assets out/shufflenet_v2_x1_0_int8.tflite [--app android_demo]

writes into `<app>/app/src/main/assets/`:

- `model.tflite`       a copy of the artifact;
- `labels.txt`         one class name per line (from the sidecar; `--labels FILE` overrides);
- `model_config.json`  input size, resize size, mean/std, layout, input/output dtype, scale and zero point,
                       number of classes, and the artifact's name and SHA-256 (schema below).

The app reads only these (`dev.shufflenetedge.core.ModelConstants`); no constant is typed by hand.
Each file is written to a temporary name in the assets folder and renamed into place, the config last.

The constants come from the artifact's sidecar JSON (`<artifact>.json` or `<stem>.json`; without one, from the
metadata the exporters embed in the .tflite), which the
exporters write. Keys read: `preprocess` (required: `Preprocess.to_dict()`), `model`, `precision`,
`labels` or `labels_file`, and `input` / `output` (`dtype`, `shape`, `layout`, `scale`, `zero_point`,
or `quantization: [scale, zero_point]`). Where the sidecar lacks the input or output tensor description,
it is read from the .tflite itself with LiteRT; where both have it, they must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shufflenet_edge.cli import command
from shufflenet_edge.data import Preprocess, labels_for
from shufflenet_edge.errors import EdgeError, UsageError
from shufflenet_edge.files import file_sha256

SCHEMA = "shufflenet-edge/android-assets/1"
ASSETS_SUBDIR = Path("app") / "src" / "main" / "assets"
MODEL_ASSET = "model.tflite"
LABELS_ASSET = "labels.txt"
CONFIG_ASSET = "model_config.json"
DTYPES = ("float32", "int8", "uint8")


@dataclass(frozen=True)
class TensorSpec:
    """The app's model input or output: its dtype and, for int8/uint8, the quantization scale and zero point."""

    dtype: str
    scale: float | None = None
    zero_point: int | None = None


def model_config(pre: Preprocess, *, input_tensor: TensorSpec, output_tensor: TensorSpec, num_classes: int,
                 layout: str = "nhwc", model: str = "", precision: str = "", source_artifact: str = "",
                 source_sha256: str = "") -> dict[str, Any]:
    """The model_config.json the app reads (schema `shufflenet-edge/android-assets/1`)."""
    inp, out = input_tensor, output_tensor
    for what, dt in (("input", inp.dtype), ("output", out.dtype)):
        if dt not in DTYPES:
            raise EdgeError(f"{what} dtype {dt!r} is not supported by the Android core; valid: {', '.join(DTYPES)}")
    if inp.dtype != "float32" and not (inp.scale and inp.scale > 0):
        raise EdgeError(f"input is {inp.dtype} but has no positive quantization scale ({inp.scale!r})")
    if out.dtype != "float32" and not (out.scale and out.scale > 0):
        raise EdgeError(f"output is {out.dtype} but has no positive quantization scale ({out.scale!r})")
    s = pre.input_size
    shape = [1, s, s, 3] if layout == "nhwc" else [1, 3, s, s]
    return {
        "schema": SCHEMA,
        "model_file": MODEL_ASSET,
        "labels_file": LABELS_ASSET,
        "model": model,
        "precision": precision,
        "num_classes": int(num_classes),
        "source_artifact": source_artifact,
        "source_sha256": source_sha256,
        "preprocess": {
            **pre.to_dict(),
            "mean": list(pre.mean),
            "std": list(pre.std),
            # How the numbers are to be applied, so nobody reimplements them differently.
            "resize": "shorter side to resize_size, Pillow BILINEAR (antialiased, 8-bit fixed point)",
            "crop": "centre, offset int(round((n - input_size) / 2)) (half to even)",
            "normalize": "(x / 255 - mean) / std in float32",
        },
        "input": {
            "layout": layout,
            "shape": shape,
            "dtype": inp.dtype,
            "scale": float(inp.scale) if inp.dtype != "float32" and inp.scale else None,
            "zero_point": int(inp.zero_point or 0) if inp.dtype != "float32" else None,
            "quantize": "clip(rint(x / scale) + zero_point)" if inp.dtype != "float32" else None,
        },
        "output": {
            "shape": [1, int(num_classes)],
            "dtype": out.dtype,
            "scale": float(out.scale) if out.dtype != "float32" and out.scale else None,
            "zero_point": int(out.zero_point or 0) if out.dtype != "float32" else None,
        },
    }


# ---------------------------------------------------------------------------------------------- sidecar


def _tensor_from_sidecar(d: Any) -> dict[str, Any] | None:
    """Normalize an `input`/`output` sidecar entry to {dtype, shape, scale, zero_point} (None if absent)."""
    if not isinstance(d, dict) or "dtype" not in d:
        return None
    dtype = str(d["dtype"]).replace("tensor(", "").rstrip(")")
    dtype = {"float": "float32", "float32": "float32", "int8": "int8", "uint8": "uint8"}.get(dtype, dtype)
    scale, zp = d.get("scale"), d.get("zero_point")
    q = d.get("quantization")
    if isinstance(q, dict):
        scale, zp = q.get("scale", scale), q.get("zero_point", zp)
    elif isinstance(q, (list, tuple)) and len(q) == 2:
        scale, zp = q
    if isinstance(scale, list):  # per-tensor quantization written as a one-element list
        scale = scale[0] if len(scale) == 1 else scale
    if isinstance(zp, list):
        zp = zp[0] if len(zp) == 1 else zp
    if isinstance(scale, list) or isinstance(zp, list):
        raise EdgeError("per-channel quantization of a model input/output is not supported by the Android core")
    return {"dtype": dtype, "shape": [int(s) for s in d["shape"]] if d.get("shape") else None,
            "scale": float(scale) if scale else None, "zero_point": int(zp) if zp is not None else None,
            "layout": d.get("layout")}


def _tensors_from_tflite(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError as e:
        raise EdgeError("the sidecar lacks the input/output description and LiteRT is not installed to read it "
                        "from the model: pip install ai-edge-litert") from e
    import numpy as np

    try:
        it = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeError(f"cannot load TFLite model {path}: {msg}") from e

    def conv(t: dict[str, Any]) -> dict[str, Any]:
        scale, zp = t["quantization"]
        return {"dtype": np.dtype(t["dtype"]).name, "shape": [int(s) for s in t["shape"]],
                "scale": float(scale) if scale else None, "zero_point": int(zp), "layout": None}

    ins, outs = it.get_input_details(), it.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise EdgeError(f"{path} has {len(ins)} inputs and {len(outs)} outputs; the app expects one of each")
    return conv(ins[0]), conv(outs[0])


def _agree(what: str, side: dict[str, Any], model: dict[str, Any]) -> None:
    if side["dtype"] != model["dtype"]:
        raise EdgeError(f"{what} dtype: the sidecar says {side['dtype']}, the model file says {model['dtype']}")
    if model["dtype"] != "float32":
        if side["scale"] is not None and abs(side["scale"] - model["scale"]) > 1e-6 * max(1.0, abs(model["scale"])):
            raise EdgeError(f"{what} scale: the sidecar says {side['scale']}, the model file says {model['scale']}")
        if side["zero_point"] is not None and side["zero_point"] != model["zero_point"]:
            raise EdgeError(f"{what} zero point: the sidecar says {side['zero_point']}, "
                            f"the model file says {model['zero_point']}")


def read_artifact_constants(artifact: Path, labels_file: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The model_config dict and the labels for an artifact, from its sidecar (and the model file)."""
    if not artifact.is_file():
        raise EdgeError(f"artifact not found: {artifact}")
    if artifact.suffix.lower() != ".tflite":
        raise EdgeError(f"the Android demo runs TFLite models; {artifact} is not a .tflite "
                        "(export one with `shufflenet-edge export --target tflite`)")
    from shufflenet_edge.export.common import artifact_info, sidecar_candidates

    side, sc_path = artifact_info(artifact)
    if side is None:
        raise EdgeError(f"no sidecar JSON for {artifact} (looked for {', '.join(str(c) for c in sidecar_candidates(artifact))}) "
                        "and no shufflenet-edge metadata embedded in it: re-export it with `shufflenet-edge export`")
    if not isinstance(side.get("preprocess"), dict):
        raise EdgeError(f"sidecar {sc_path} has no 'preprocess' object (input_size, resize_size, mean, std)")
    try:
        pre = Preprocess.from_dict(side["preprocess"])
    except (KeyError, TypeError, ValueError) as e:
        raise EdgeError(f"sidecar {sc_path}: bad 'preprocess' entry: {e}") from e
    if pre.channel_order != "rgb":
        raise EdgeError(f"{artifact}: the model takes {pre.channel_order.upper()} input (megvii's preprocessing); the "
                        "Android core feeds RGB only")

    inp, out = _tensor_from_sidecar(side.get("input")), _tensor_from_sidecar(side.get("output"))
    need_model = inp is None or out is None or inp["scale"] is None and inp["dtype"] != "float32" \
        or out["scale"] is None and out["dtype"] != "float32"
    m_in, m_out = _tensors_from_tflite(artifact) if need_model or _litert_available() else (None, None)
    if m_in is not None and m_out is not None:
        if inp is not None:
            _agree("input", inp, m_in)
        if out is not None:
            _agree("output", out, m_out)
        inp, out = m_in, m_out
    assert inp is not None and out is not None

    shape = inp["shape"] or [1, pre.input_size, pre.input_size, 3]
    layout = inp.get("layout") or ("nhwc" if shape[-1] == 3 else "nchw")
    if layout != "nhwc":
        raise EdgeError(f"{artifact}: input layout is {layout} (shape {shape}); the app feeds NHWC TFLite inputs")
    if shape[1] != pre.input_size or shape[2] != pre.input_size:
        raise EdgeError(f"{artifact}: input shape {shape} does not match the sidecar's input_size {pre.input_size}")
    num_classes = int(out["shape"][-1]) if out.get("shape") else int(side.get("num_classes", 0))
    if num_classes < 1:
        raise EdgeError(f"{artifact}: cannot tell the number of classes (no output shape, no num_classes)")

    labels = _labels(side, Path(sc_path) if sc_path and Path(sc_path).is_file() else artifact, labels_file, num_classes)
    cfg = model_config(pre, input_tensor=TensorSpec(inp["dtype"], inp["scale"], inp["zero_point"]),
                       output_tensor=TensorSpec(out["dtype"], out["scale"], out["zero_point"]),
                       num_classes=num_classes, layout=layout, model=str(side.get("model", artifact.stem)),
                       precision=str(side.get("precision", "")), source_artifact=artifact.name,
                       source_sha256=file_sha256(artifact))
    return cfg, labels


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _labels(side: dict[str, Any], sc_path: Path, labels_file: Path | None, n: int) -> list[str]:
    if labels_file is not None:
        src: Any = labels_file
    elif isinstance(side.get("labels"), list):
        src = side["labels"]
    elif side.get("labels_file"):
        src = sc_path.parent / str(side["labels_file"])
    else:
        src = None
    if src is None:
        return labels_for(None, n)
    if isinstance(src, Path):
        try:
            lines = src.read_text().splitlines()
        except OSError as e:
            raise EdgeError(f"cannot read labels {src}: {e}") from e
        while lines and not lines[-1].strip():
            lines.pop()
        labels = [s.strip() for s in lines]
    else:
        labels = [str(s) for s in src]
    if len(labels) != n:
        raise EdgeError(f"labels: {len(labels)} names for a model with {n} classes ({src if isinstance(src, Path) else 'sidecar'})")
    if any("\n" in s for s in labels):
        raise EdgeError("labels must not contain line breaks")
    return labels


def missing_app_message(app: Path) -> str:
    """Where the demo app is: the source tree's android_demo/, which a wheel install does not carry."""
    checkout = Path(__file__).resolve().parents[2] / "android_demo"  # beside the package in a source checkout
    if (checkout / "app").is_dir():
        return f"Android project not found: {app} (this checkout's demo app is {checkout}: pass --app {checkout})"
    from shufflenet_edge import __version__

    return (f"Android project not found: {app}. The demo app is not installed with the package: it is the "
            f"android_demo/ folder of the shufflenet-edge source (the project's repository, or the source archive "
            f"shufflenet-edge-{__version__}.tar.gz); run this from that folder's parent or pass --app PATH/android_demo")


def write_assets(artifact: Path, app: Path, labels_file: Path | None = None) -> dict[str, Any]:
    """Copy model, labels and model_config.json into the app's assets; returns the config written."""
    if not app.is_dir():
        raise EdgeError(missing_app_message(app))
    if not (app / "app").is_dir():
        raise EdgeError(f"{app} is not the Android demo project (no {app / 'app'} folder); pass --app android_demo")
    cfg, labels = read_artifact_constants(artifact, labels_file)
    assets = app / ASSETS_SUBDIR
    assets.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        def stage(name: str) -> Path:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=assets)
            os.close(fd)
            staged.append((Path(tmp), assets / name))
            return Path(tmp)

        shutil.copyfile(artifact, stage(MODEL_ASSET))
        stage(LABELS_ASSET).write_text("\n".join(labels) + "\n", encoding="utf-8")
        stage(CONFIG_ASSET).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        for tmp, final in staged:  # the config is renamed last: a reader never sees a new config with an old model
            os.replace(tmp, final)
        staged.clear()
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return cfg


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", help="a .tflite artifact with its sidecar JSON beside it")
    p.add_argument("--app", default="android_demo", help="the Android project folder (default android_demo)")
    p.add_argument("--labels", help="a labels file (one name per line) instead of the sidecar's labels")


@command("android-assets", "copy a .tflite, its labels and preprocessing constants into the Android app's assets")(_add_args)
def cmd_android_assets(args: argparse.Namespace) -> int:
    labels = Path(args.labels) if args.labels else None
    if labels is not None and not labels.is_file():
        raise UsageError(f"labels file not found: {labels}")
    cfg = write_assets(Path(args.artifact), Path(args.app), labels)
    inp = cfg["input"]
    q = f" scale {inp['scale']:.6g} zero point {inp['zero_point']}" if inp["dtype"] != "float32" else ""
    print(f"wrote {Path(args.app) / ASSETS_SUBDIR}: {MODEL_ASSET} ({cfg['model']}), {LABELS_ASSET} "
          f"({cfg['num_classes']} classes), {CONFIG_ASSET} (input {inp['dtype']} {inp['shape']}{q})")
    return 0
