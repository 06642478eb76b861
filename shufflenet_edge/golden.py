"""Golden vectors for the Android app's Java core, written by OUR Python preprocessing.

The app's pre- and post-processing (`android_demo/core`, plain Java) must give the same tensors as
`shufflenet_edge.data.Preprocess` and the runner's quantization. This module writes, for generated images
of several sizes and aspect ratios, the source pixels and what Python makes of them: the resized and
centre-cropped uint8 pixels, the normalized float32 input, and int8/uint8 inputs quantized with a
scale and zero point; and, for logits (float and int8), the dequantized values, softmax probabilities and
top-k indices. The Java tests (`GoldenTest`) read them and compare.

Formats (all little-endian, no headers): `*.rgb` and `*.crop.u8` raw HWC uint8; `*.f32` float32;
`*.i8` int8; `*.u8` uint8. `manifest.json` lists every file and the constants JSON each case uses
(the same schema the app reads from its assets, see `shufflenet_edge.commands.android`).

Regenerate the small committed set the Gradle build tests with:

    python -m shufflenet_edge.golden --small --out android_demo/core/src/test/resources/golden
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_edge.data import Preprocess

# (width, height): landscape, portrait, square at the resize size (no resampling), very tall and thin
# (upsampling of the short side), odd sizes whose crop offset is x.5 (Python rounds half to even), a
# 16:9 camera frame, and a tiny image (upsampling both ways).
IMAGE_SIZES = [(320, 240), (240, 320), (256, 256), (97, 531), (513, 257), (1280, 720), (50, 40)]
SMALL_PRESET = Preprocess(input_size=32, resize_size=37)
SMALL_IMAGE_SIZES = [(48, 36), (36, 48), (37, 37), (17, 93), (91, 46), (160, 90), (20, 16)]

# Quantization cases besides the constants under test: typical int8/uint8 parameters for ImageNet-normalized
# inputs (range about [-2.12, 2.64]).
EXTRA_INPUT_CASES: list[dict[str, Any]] = [
    {"name": "int8", "dtype": "int8", "scale": 0.018658, "zero_point": -14, "layout": "nhwc"},
    {"name": "uint8", "dtype": "uint8", "scale": 0.018658, "zero_point": 114, "layout": "nhwc"},
    {"name": "float_nhwc", "dtype": "float32", "scale": 0.0, "zero_point": 0, "layout": "nhwc"},
    {"name": "float_nchw", "dtype": "float32", "scale": 0.0, "zero_point": 0, "layout": "nchw"},
]
TOP_K = 5


def make_image(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic RGB test image: gradients, a sinusoid, hard-edged blocks and noise (HxWx3 uint8).

    Hard edges and noise make any difference in the resampling filter visible; a smooth image would hide it.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(1, width - 1), yy / max(1, height - 1)
    img = np.empty((height, width, 3), np.float64)
    for c in range(3):
        a, b, f, ph = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(2, 12), rng.uniform(0, 6.3)
        img[..., c] = 0.5 + 0.3 * (a * u + b * v) + 0.2 * np.sin(f * (u * a + v * b) * 6.28 + ph)
    for _ in range(6):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(1, max(2, width // 3)), y0 + rng.integers(1, max(2, height // 3))
        img[y0:y1, x0:x1] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.06, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def quantize(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """The runner's quantization (runtimes/runner.py `_quantize`), spelled out in float32."""
    info = np.iinfo(np.dtype(dtype))
    q = np.rint(x.astype(np.float32) / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - np.max(x)
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Largest first; equal scores keep the lower index first (stable sort on -score)."""
    return [int(i) for i in np.argsort(-scores.astype(np.float64), kind="stable")[:k]]


def geometry(pre: Preprocess, width: int, height: int) -> dict[str, int]:
    """The resize and crop numbers Preprocess.resize_and_crop uses (kept in the manifest for diagnosis)."""
    s = pre.resize_size
    if width <= height:
        nw, nh = s, max(1, int(round(height * s / width)))
    else:
        nw, nh = max(1, int(round(width * s / height))), s
    return {"resized_width": nw, "resized_height": nh,
            "left": int(round((nw - pre.input_size) / 2.0)), "top": int(round((nh - pre.input_size) / 2.0))}


def _case_constants(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    c = json.loads(json.dumps(base))
    c["input"] = dict(c["input"])
    c["input"].update({"dtype": case["dtype"], "layout": case["layout"],
                       "scale": case["scale"] if case["dtype"] != "float32" else None,
                       "zero_point": case["zero_point"] if case["dtype"] != "float32" else None})
    return c


def write_golden(out_dir: str | os.PathLike[str], constants: dict[str, Any], *,
                 sizes: list[tuple[int, int]] | None = None, seed: int = 0, num_classes: int = 1000) -> Path:
    """Write golden vectors for `constants` (a model_config dict) and the extra cases into out_dir.

    Replaces out_dir atomically (written beside it, then renamed). Returns the manifest path.
    """
    from PIL import Image

    out = Path(out_dir)
    pre = Preprocess.from_dict(constants["preprocess"])
    sizes = sizes or IMAGE_SIZES
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        cases = [{"name": "assets", "dtype": constants["input"]["dtype"],
                  "scale": constants["input"].get("scale") or 0.0,
                  "zero_point": constants["input"].get("zero_point") or 0,
                  "layout": constants["input"].get("layout", "nhwc")}] + EXTRA_INPUT_CASES
        case_entries = []
        for case in cases:
            cfile = f"constants_{case['name']}.json"
            (tmp / cfile).write_text(json.dumps(_case_constants(constants, case), indent=2) + "\n")
            case_entries.append({"name": case["name"], "constants": cfile, "dtype": case["dtype"],
                                 "layout": case["layout"], "scale": case["scale"], "zero_point": case["zero_point"]})
        images = []
        for i, (w, h) in enumerate(sizes):
            name = f"img{i}_{w}x{h}"
            rgb = make_image(w, h, seed + i)
            (tmp / f"{name}.rgb").write_bytes(rgb.tobytes())
            crop = pre.resize_and_crop(Image.fromarray(rgb, "RGB"))
            (tmp / f"{name}.crop.u8").write_bytes(crop.tobytes())
            chw = pre.normalize(crop)  # float32 CHW, the Python pipeline's own output
            tensors = {}
            for case in cases:
                x = chw if case["layout"] == "nchw" else np.ascontiguousarray(chw.transpose(1, 2, 0))
                if case["dtype"] == "float32":
                    data, ext = x.astype("<f4"), "f32"
                else:
                    data = quantize(x, case["dtype"], case["scale"], case["zero_point"])
                    ext = "i8" if case["dtype"] == "int8" else "u8"
                fname = f"{name}.{case['name']}.{ext}"
                (tmp / fname).write_bytes(data.tobytes())
                tensors[case["name"]] = fname
            images.append({"name": name, "width": w, "height": h, "rgb": f"{name}.rgb",
                           "crop": f"{name}.crop.u8", "tensors": tensors, **geometry(pre, w, h)})
        logits = _write_logits(tmp, num_classes, seed)
        manifest = {
            "schema": "shufflenet-edge/golden/1",
            "about": "written by shufflenet_edge.golden from shufflenet_edge.data.Preprocess; see its docstring",
            "regenerate": "python -m shufflenet_edge.golden --out DIR [--small] [--constants model_config.json]",
            "pillow": _version("pillow"), "numpy": np.__version__,
            "preprocess": pre.to_dict(), "top_k": TOP_K,
            "float_tolerance": 1e-5, "quantized_tolerance_steps": 1,
            "cases": case_entries, "images": images, "logits": logits,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(out.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out / "manifest.json"


def _write_logits(tmp: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed + 1000)
    entries = []
    # Float logits with planted exact ties inside the top-5 (the tie rule must agree) and near-ties.
    f = (rng.normal(0, 3, n)).astype(np.float32)
    top = int(np.argmax(f))
    f[(top + 7) % n] = f[top]
    f[(top + 11) % n] = np.nextafter(f[top], np.float32(-np.inf))
    f2 = (rng.normal(0, 0.01, n)).astype(np.float32)  # a flat distribution
    for name, x in (("logits_float_ties", f), ("logits_float_flat", f2)):
        (tmp / f"{name}.f32").write_bytes(x.astype("<f4").tobytes())
        (tmp / f"{name}.probs.f32").write_bytes(softmax(x).astype("<f4").tobytes())
        entries.append({"name": name, "dtype": "float32", "raw": f"{name}.f32", "count": n,
                        "dequantized": f"{name}.f32", "probs": f"{name}.probs.f32", "topk": top_k(x, TOP_K)})
    # Quantized logits: many exact ties after quantization.
    for name, dtype, scale, zp in (("logits_int8", "int8", 0.0891, 12), ("logits_uint8", "uint8", 0.0625, 140)):
        real = rng.normal(0, 2.5, n).astype(np.float32)
        q = quantize(real, dtype, scale, zp)
        d = dequantize(q, scale, zp)
        ext = "i8" if dtype == "int8" else "u8"
        (tmp / f"{name}.{ext}").write_bytes(q.tobytes())
        (tmp / f"{name}.deq.f32").write_bytes(d.astype("<f4").tobytes())
        (tmp / f"{name}.probs.f32").write_bytes(softmax(d).astype("<f4").tobytes())
        entries.append({"name": name, "dtype": dtype, "scale": scale, "zero_point": zp, "raw": f"{name}.{ext}",
                        "count": n, "dequantized": f"{name}.deq.f32", "probs": f"{name}.probs.f32",
                        "topk": top_k(d, TOP_K)})
    return entries


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "unknown"


def default_constants(pre: Preprocess, num_classes: int = 1000) -> dict[str, Any]:
    """A model_config for an int8-input, int8-output model with typical parameters (used when no assets exist)."""
    from shufflenet_edge.commands.android import TensorSpec, model_config

    return model_config(pre, input_tensor=TensorSpec("int8", scale=0.018658, zero_point=-14),
                        output_tensor=TensorSpec("int8", scale=0.0891, zero_point=12),
                        num_classes=num_classes, model="golden", precision="int8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shufflenet_edge.golden", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (replaced)")
    p.add_argument("--constants", help="a model_config.json from `shufflenet-edge android-assets` (default: typical int8)")
    p.add_argument("--small", action="store_true",
                   help=f"the committed set: input {SMALL_PRESET.input_size}, resize {SMALL_PRESET.resize_size}, small images")
    p.add_argument("--num-classes", type=int, default=1000)
    a = p.parse_args(argv)
    if a.constants:
        constants = json.loads(Path(a.constants).read_text())
        sizes = SMALL_IMAGE_SIZES if a.small else None
    else:
        constants = default_constants(SMALL_PRESET if a.small else Preprocess(), a.num_classes)
        sizes = SMALL_IMAGE_SIZES if a.small else None
    path = write_golden(a.out, constants, sizes=sizes, num_classes=a.num_classes)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
