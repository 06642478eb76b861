"""Parity of an artifact's outputs with the PyTorch float model (docs/design.md, parity).

This is the one parity helper of the project: exporters, tests, benchmarks and the `parity` command all
compare through `compare` / `check_parity` / `assert_close`, so every failure message carries the same
statistics (shape, max and mean absolute error, cosine, PSNR, top-1 agreement).

Metrics over N inputs, `ref` = PyTorch float logits, `out` = the artifact's (dequantized) logits:
- max and mean absolute error of all logits;
- cosine similarity of each sample's logit vector (mean and minimum over samples);
- PSNR = 20·log10(max|ref| / rmse) in dB (Qualcomm AI Hub's form: above 30 dB is "good"); identical
  outputs give +inf, written as null in JSON;
- top-1 agreement (same arg-max), top-5 overlap (mean |top5(ref) ∩ top5(out)| / 5);
- top-1 / top-5 accuracy of both, when labels are given.

`run_parity` is the engine of `shufflenet-edge parity`: it reads each artifact's sidecar JSON to know how
to feed it (layout, input size, preprocessing, quantization), runs it through `runtimes.runner`, runs the
reference, and returns a report (a JSON-able dict) that `format_table` prints.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError, UsageError, eval_mode
from shufflenet_edge.files import write_json_atomic  # noqa: F401  (reports are written through it)

TOPK = 5


class ParityError(EdgeError):
    """Outputs disagree beyond a threshold; the message carries the statistics."""


# --------------------------------------------------------------------------------------------- metrics


@dataclasses.dataclass
class ParityStats:
    n: int
    num_classes: int
    max_abs_error: float
    mean_abs_error: float
    cosine_mean: float
    cosine_min: float
    psnr_db: float  # math.inf when outputs are identical
    top1_agreement: float | None  # None where the output is not logits (a feature map's arg-max means nothing)
    top5_overlap: float | None
    max_abs_ref: float
    ref_top1_accuracy: float | None = None
    ref_top5_accuracy: float | None = None
    top1_accuracy: float | None = None
    top5_accuracy: float | None = None

    @property
    def accuracy_drop_points(self) -> float | None:
        """Reference top-1 accuracy minus the artifact's, in percentage points."""
        if self.ref_top1_accuracy is None or self.top1_accuracy is None:
            return None
        return 100.0 * (self.ref_top1_accuracy - self.top1_accuracy)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["psnr_db"] = None if math.isinf(self.psnr_db) else self.psnr_db
        d["accuracy_drop_points"] = self.accuracy_drop_points
        return d

    def summary(self) -> str:
        """One line with every statistic, for failure messages."""
        parts = [
            f"n={self.n}",
            f"max abs err {self.max_abs_error:.3g}",
            f"mean abs err {self.mean_abs_error:.3g}",
            f"cosine {self.cosine_mean:.6f} (min {self.cosine_min:.6f})",
            f"PSNR {fmt_psnr(self.psnr_db)} dB",
        ]
        if self.top1_agreement is not None and self.top5_overlap is not None:
            parts += [f"top-1 agreement {self.top1_agreement:.2%}", f"top-5 overlap {self.top5_overlap:.2%}"]
        if self.top1_accuracy is not None and self.ref_top1_accuracy is not None:
            parts.append(f"top-1 accuracy {self.top1_accuracy:.2%} vs reference {self.ref_top1_accuracy:.2%}")
        return ", ".join(parts)


def fmt_psnr(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:.1f}"


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-x, axis=1, kind="stable")[:, :k]


def compare(out: np.ndarray, ref: np.ndarray, labels: np.ndarray | None = None, *,
            logits: bool | None = None) -> ParityStats:
    """Statistics of `out` against `ref` (N samples each, any shape). Top-1/top-5 only for logits (`logits`;
    default: a rank-2 (N, K) output); other outputs get None there."""
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    if logits is None:
        logits = ref.ndim <= 2
    if out.shape != ref.shape:
        raise ParityError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
    if out.ndim == 1:
        out, ref = out[None], ref[None]
    out = out.reshape(out.shape[0], -1)
    ref = ref.reshape(ref.shape[0], -1)
    n, k = ref.shape
    if n == 0:
        raise ParityError("no outputs to compare (0 inputs)")
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise ParityError(f"artifact output holds {bad} non-finite values (NaN or inf) of {out.size}")
    diff = np.abs(out - ref)
    rmse = float(np.sqrt(np.mean(diff**2)))
    peak = float(np.abs(ref).max())
    if rmse == 0.0:
        psnr = math.inf
    elif peak == 0.0:
        psnr = -math.inf
    else:
        psnr = 20.0 * math.log10(peak / rmse)
    no = np.linalg.norm(out, axis=1)
    nr = np.linalg.norm(ref, axis=1)
    denom = no * nr
    cos = np.where(denom > 0, np.sum(out * ref, axis=1) / np.where(denom > 0, denom, 1.0),
                   np.where((no == 0) & (nr == 0), 1.0, 0.0))
    kk = min(TOPK, k)
    t_ref, t_out = _topk(ref, kk), _topk(out, kk)
    overlap = np.mean([len(set(a) & set(b)) / kk for a, b in zip(t_ref, t_out)])
    stats = ParityStats(
        n=n,
        num_classes=k,
        max_abs_error=float(diff.max()),
        mean_abs_error=float(diff.mean()),
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
        psnr_db=psnr,
        top1_agreement=float(np.mean(t_ref[:, 0] == t_out[:, 0])) if logits else None,
        top5_overlap=float(overlap) if logits else None,
        max_abs_ref=peak,
    )
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        if len(y) != n:
            raise ParityError(f"{len(y)} labels for {n} outputs")
        stats.ref_top1_accuracy = float(np.mean(t_ref[:, 0] == y))
        stats.top1_accuracy = float(np.mean(t_out[:, 0] == y))
        stats.ref_top5_accuracy = float(np.mean((t_ref == y[:, None]).any(1)))
        stats.top5_accuracy = float(np.mean((t_out == y[:, None]).any(1)))
    return stats


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """What an artifact must meet; None = not checked. Agreements and cosine are fractions (0..1)."""

    max_abs_error: float | None = None
    max_rel_error: float | None = None  # max abs error / max |reference|
    min_psnr: float | None = None
    min_top1_agreement: float | None = None
    min_top5_overlap: float | None = None
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None  # percentage points of top-1 accuracy

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def any(self) -> bool:
        return bool(self.to_dict())


# The gate `parity` applies when the user sets no threshold, per precision. Chosen from what correct artifacts of
# this project reach (README "Parity": fp32 within 1e-5 of the largest logit on every registered model and 100%
# top-1 agreement; int8 of the trained digits models 35-38.5 dB and >= 99.6% agreement, the default V2 1.0x
# int8 of the main job 42.6 dB and 100%) and from what Qualcomm AI Hub calls good (PSNR above 30 dB), with room
# for noise: a damaged fp32 artifact (cosine 0.93, 21 dB) fails every one of them.
DEFAULT_GATES: dict[str, Thresholds] = {
    "fp32": Thresholds(max_rel_error=1e-3, min_top1_agreement=0.99),
    "fp16": Thresholds(max_rel_error=2e-2, min_psnr=40.0, min_top1_agreement=0.95),
    "int8": Thresholds(min_psnr=30.0, min_top1_agreement=0.90),
}


def default_gate(precision: str) -> Thresholds:
    return DEFAULT_GATES.get(precision, DEFAULT_GATES["fp32"])


def violations(stats: ParityStats, t: Thresholds) -> list[str]:
    """Each missed threshold as 'metric value <op> limit'."""
    bad = []
    if t.max_abs_error is not None and not stats.max_abs_error <= t.max_abs_error:
        bad.append(f"max abs error {stats.max_abs_error:.3g} > {t.max_abs_error:.3g}")
    if t.max_rel_error is not None:
        rel = stats.max_abs_error / stats.max_abs_ref if stats.max_abs_ref > 0 else math.inf
        if not rel <= t.max_rel_error:
            bad.append(f"relative max error {rel:.3g} > {t.max_rel_error:.3g} (max abs error {stats.max_abs_error:.3g}, "
                       f"max |reference| {stats.max_abs_ref:.3g})")
    if t.min_psnr is not None and not stats.psnr_db >= t.min_psnr:
        bad.append(f"PSNR {fmt_psnr(stats.psnr_db)} dB < {t.min_psnr:g} dB")
    if t.min_top1_agreement is not None and stats.top1_agreement is not None and not stats.top1_agreement >= t.min_top1_agreement:
        bad.append(f"top-1 agreement {stats.top1_agreement:.2%} < {t.min_top1_agreement:.2%}")
    if t.min_top5_overlap is not None and stats.top5_overlap is not None and not stats.top5_overlap >= t.min_top5_overlap:
        bad.append(f"top-5 overlap {stats.top5_overlap:.2%} < {t.min_top5_overlap:.2%}")
    if t.min_cosine is not None and not stats.cosine_min >= t.min_cosine:
        bad.append(f"min cosine {stats.cosine_min:.6f} < {t.min_cosine:.6f}")
    if t.max_accuracy_drop is not None:
        drop = stats.accuracy_drop_points
        if drop is None:
            bad.append("accuracy drop cannot be checked: the inputs have no labels (use an image folder with class sub-folders)")
        elif not drop <= t.max_accuracy_drop:
            bad.append(f"top-1 accuracy drop {drop:.2f} points > {t.max_accuracy_drop:g}")
    return bad


def check_parity(
    out: np.ndarray,
    ref: np.ndarray,
    *,
    what: str = "output",
    labels: np.ndarray | None = None,
    max_abs_error: float | None = None,
    min_psnr: float | None = None,
    min_top1_agreement: float | None = None,
    min_top5_overlap: float | None = None,
    min_cosine: float | None = None,
    max_accuracy_drop: float | None = None,
) -> ParityStats:
    """Compare and raise ParityError naming every missed threshold and all statistics."""
    stats = compare(out, ref, labels)
    t = Thresholds(max_abs_error=max_abs_error, min_psnr=min_psnr, min_top1_agreement=min_top1_agreement,
                   min_top5_overlap=min_top5_overlap, min_cosine=min_cosine, max_accuracy_drop=max_accuracy_drop)
    bad = violations(stats, t)
    if bad:
        raise ParityError(f"parity failed for {what}: {'; '.join(bad)} ({stats.summary()})")
    return stats


def assert_close(actual: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-5, what: str = "tensor") -> None:
    """Element-wise closeness for raw tensors; the failure says shape, dtype, max/mean abs error and where."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise ParityError(f"{what}: shape {tuple(a.shape)} ({a.dtype}) differs from expected {tuple(e.shape)} ({e.dtype})")
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    diff = np.abs(a64 - e64)
    bad = ~(diff <= atol + rtol * np.abs(e64))
    if bad.any():
        worst = np.unravel_index(int(np.argmax(np.where(np.isnan(diff), np.inf, diff))), diff.shape)
        raise ParityError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ beyond atol {atol:g} + rtol {rtol:g}: "
            f"shape {tuple(a.shape)}, dtype {a.dtype} vs {e.dtype}, max abs err {float(np.nanmax(diff)):.3g} "
            f"at {tuple(int(i) for i in worst)} ({a64[worst]:.6g} vs {e64[worst]:.6g}), mean abs err {float(np.nanmean(diff)):.3g}"
        )


# --------------------------------------------------------------------------------------------- sidecar


# One mechanism for every command: the sidecar wins, else the metadata embedded in the artifact.
from shufflenet_edge.export.common import (  # noqa: E402
    artifact_info,
    missing_identity_hint,
    read_sidecar,  # noqa: F401  (re-exported for tests and callers)
)


def check_artifact_file(path: str | os.PathLike[str]) -> str:
    """The artifact's format ('onnx' or 'tflite'); one-line errors for missing, empty, truncated or foreign files."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".onnx", ".tflite"):
        raise UsageError(f"unknown artifact type {ext or '(none)'!r} for {p}: expected .onnx or .tflite")
    if not p.is_file():
        raise EdgeError(f"artifact not found: {p}")
    size = p.stat().st_size
    if size == 0:
        raise EdgeError(f"artifact {p} is empty (0 bytes)")
    if ext == ".tflite":
        with open(p, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise EdgeError(f"artifact {p} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4; corrupt or not a .tflite)")
        return "tflite"
    return "onnx"


# --------------------------------------------------------------------------------------------- inputs


@dataclasses.dataclass
class Inputs:
    """Preprocessed float NCHW inputs (N, 3, S, S), labels if known, and where they came from.

    `kind` is 'images' (a folder: preprocessed per artifact with its sidecar's preprocessing), 'npy'
    (already preprocessed, used as given), 'synthetic', 'held_out' (the images of a calibration folder that did not
    calibrate) or 'default' (per artifact: the inputs its export checked int8 on, as its sidecar records them,
    else the synthetic default).
    """

    kind: str
    source: str
    x: np.ndarray | None = None  # for npy
    labels: np.ndarray | None = None
    folder: str | None = None
    limit: int | None = None
    n_synthetic: int = 0
    seed: int = 0
    calibration_limit: int | None = None  # held_out: how many images of `folder` calibrated (those are skipped)
    label_names: list[str] | None = None  # model output order (--labels FILE)
    label_source: str | None = None


def read_label_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names in model output order, one per line (ImageNet synset files: `n01440764 tench, ...`)."""
    p = Path(path)
    try:
        lines = [ln.strip() for ln in p.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgeError(f"cannot read label file {p}: {e.strerror if isinstance(e, OSError) else e}") from e
    names = [ln for ln in lines if ln]
    if not names:
        raise EdgeError(f"label file {p} is empty")
    return names


def map_labels(
    labels: np.ndarray | None, classes: list[str] | None, num_classes: int,
    names: list[str] | None = None, names_source: str | None = None,
) -> tuple[np.ndarray | None, str | None]:
    """Turn folder labels (indices into sorted `classes`) into model class indices, and say how.

    Folder names are looked up in `names` (a label list in model output order) when there is one; else
    names that are integers are the class index; else, when there are exactly `num_classes` folders,
    sorted order is class order (torchvision's ImageFolder convention, right for ImageNet synsets). Otherwise
    accuracy is not computed: guessing would report wrong numbers.
    """
    if labels is None:
        return None, None
    if classes is None:  # labels given as indices (npz)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise EdgeError(f"labels must be class indices in [0, {num_classes}), got {labels.min()}..{labels.max()}")
        return labels, "class indices from the input file"
    if names:
        table: dict[str, int] = {}
        for i, n in enumerate(names):
            table.setdefault(n, i)
            table.setdefault(n.split()[0], i)
        unknown = [c for c in classes if c not in table]
        if unknown:
            raise EdgeError(f"class folders not in the label list {names_source or ''}: {', '.join(unknown[:6])}"
                            f"{' ...' if len(unknown) > 6 else ''}")
        idx = np.asarray([table[c] for c in classes])
        if idx.max() >= num_classes:
            raise EdgeError(f"label list {names_source or ''} puts {classes[int(idx.argmax())]} at index "
                            f"{int(idx.max())}, but the model has {num_classes} classes")
        return idx[labels], f"folder names looked up in {names_source or 'the label list'}"
    if all(c.isdigit() for c in classes) and max(int(c) for c in classes) < num_classes:
        return np.asarray([int(c) for c in classes])[labels], "folder names are class indices"
    if len(classes) == num_classes:
        return labels, f"{num_classes} folders in sorted order = class order (ImageFolder convention)"
    return None, (f"accuracy not computed: {len(classes)} class folders for a {num_classes}-class model and no label "
                  "list (pass --labels FILE: one class name or synset per line, in model output order)")


def inputs_from_npy(path: str | os.PathLike[str]) -> Inputs:
    """A .npy (inputs) or .npz (arrays `x` and optional `y`) of preprocessed model inputs.

    Accepted: float NCHW (N, 3, H, W) or NHWC (N, H, W, 3), or uint8 NHWC raw RGB images (normalized
    later with the artifact's preprocessing). A single image may omit N.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"input file not found: {p}")
    labels = None
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in ("x", "images", "inputs") if k in z.files), None)
                if key is None:
                    raise EdgeError(f"{p} holds arrays {z.files}; expected 'x' (inputs) and optionally 'y' (labels)")
                x = z[key]
                ykey = next((k for k in ("y", "labels") if k in z.files), None)
                labels = z[ykey].astype(np.int64).reshape(-1) if ykey else None
        else:
            x = np.load(p, allow_pickle=False)
    except EdgeError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise EdgeError(f"cannot read input array {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or (x.shape[1] != 3 and x.shape[3] != 3):
        raise EdgeError(
            f"input array {p} has shape {tuple(x.shape)}; expected (N, 3, H, W) float NCHW or (N, H, W, 3) NHWC"
        )
    if labels is not None and len(labels) != len(x):
        raise EdgeError(f"{p}: {len(labels)} labels for {len(x)} inputs")
    if x.dtype == np.uint8:
        if x.shape[3] != 3:
            raise EdgeError(f"input array {p}: uint8 images must be NHWC (N, H, W, 3), got {tuple(x.shape)}")
    elif not np.issubdtype(x.dtype, np.floating):
        raise EdgeError(f"input array {p} has dtype {x.dtype}; expected float32 (preprocessed) or uint8 (raw RGB)")
    return Inputs("npy", f"array file {p} ({len(x)} inputs)", x=x, labels=labels)


def _folder_subset(folder: str, pre: Any, limit: int) -> Any:
    """`limit` images spread evenly over the sorted folder (the first N sorted files are one class only)."""
    from shufflenet_edge.data import ImageSet, list_images, load_image

    files = list_images(folder)
    root = Path(folder)
    if limit < len(files):
        files = [files[(i * len(files)) // limit] for i in range(limit)]
    all_classes = sorted({f.parent.name for f in list_images(folder) if f.parent != root})
    labelled = bool(all_classes) and all(f.parent != root for f in files)
    images = np.stack([pre(load_image(f)) for f in files]).astype(np.float32)
    labels = np.asarray([all_classes.index(f.parent.name) for f in files]) if labelled else None
    return ImageSet(images, [str(f) for f in files], labels, all_classes if labelled else None,
                    f"image folder {root} ({len(files)} images, evenly spaced in sorted order)")


def materialize(inputs: Inputs, pre: Any, memo: dict[Any, Any] | None = None,
                chw: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None, str, list[str] | None]:
    """(float NCHW inputs for this preprocessing, labels, source description, class folder names). `chw`: the
    artifact's input, which array inputs must match (images are resized to it by the caller)."""
    from shufflenet_edge.data import load_image_folder, synthetic_images

    key = (inputs.kind, inputs.folder, pre, chw)
    if memo is not None and key in memo:
        return memo[key]
    s = pre.input_size
    h, w = (chw[1], chw[2]) if chw else (s, s)
    if inputs.kind == "images":
        assert inputs.folder is not None
        im = load_image_folder(inputs.folder, pre) if inputs.limit is None else _folder_subset(inputs.folder, pre, inputs.limit)
        res = (im.images, im.labels, im.source + (f", classes {', '.join(im.classes)}" if im.classes and len(im.classes) <= 12 else
                                                  f", {len(im.classes)} classes" if im.classes else ", unlabelled"),
               im.classes)
    elif inputs.kind == "synthetic":
        im = synthetic_images(inputs.n_synthetic, pre, seed=inputs.seed)
        res = (im.images, None, im.source, None)
    elif inputs.kind == "held_out":
        im = _held_out(inputs, pre)
        res = (im.images, None, im.source, None)
    else:
        assert inputs.x is not None
        x = inputs.x
        if x.dtype == np.uint8:
            if x.shape[1:3] != (h, w):
                raise EdgeError(f"{inputs.source}: uint8 images are {x.shape[1]}x{x.shape[2]}, the artifact takes {h}x{w}")
            x = np.stack([pre.normalize(img) for img in x])
        elif x.shape[1] != 3 or (x.shape[3] == 3 and x.shape[1:3] == (h, w)):
            x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        if tuple(x.shape[1:]) != (3, h, w):
            raise EdgeError(
                f"{inputs.source}: inputs of shape {tuple(inputs.x.shape)} do not fit the artifact's input "
                f"3x{h}x{w} (give (N, 3, {h}, {w}) NCHW or (N, {h}, {w}, 3) NHWC)"
            )
        res = (np.ascontiguousarray(x, dtype=np.float32), inputs.labels, inputs.source, None)
    if memo is not None:
        memo[key] = res
    return res


# --------------------------------------------------------------------------------------------- running


@dataclasses.dataclass
class ArtifactPlan:
    """How to feed one artifact and which reference to compare it with."""

    path: str
    format: str
    sidecar: dict[str, Any] | None
    model: str
    weights: str | None
    num_classes: int | None
    preprocess: Any
    layout: str | None  # from the sidecar; the runtime's own guess otherwise
    precision: str
    seed: int = 0  # of the random weights, when there are no weights
    info_source: str | None = None  # the sidecar's path, or "embedded metadata of <file>"
    model_file: str | None = None  # FILE.py:FACTORY given on the command line (the reference to build)


def plan_artifact(path: str, model: str | None, weights: str | None, model_file: str | None = None) -> ArtifactPlan:
    from shufflenet_edge.data import Preprocess
    from shufflenet_edge.models.registry import get_info
    from shufflenet_edge.models.weights import file_sha256

    fmt = check_artifact_file(path)
    sc, where = artifact_info(path)
    sc_model = sc.get("model") if sc else None
    src_kind = ((sc or {}).get("source") or {}).get("kind")
    user = model_file is not None or src_kind in ("model_file", "python", "qat")
    if model and model_file:
        raise UsageError("--model and --model-file both name the reference: give one")
    if model and sc_model and model != sc_model:
        raise UsageError(f"--model {model} differs from the model {sc_model!r} recorded in {where}")
    name = model or (model_file.rpartition(":")[2] if model_file else sc_model)
    if not name:
        raise UsageError(missing_identity_hint(path))
    if model or not user:
        get_info(name)
    # the weights the artifact was exported from: the record's own, or those its source names (a QAT graph's origin)
    sc_w = (sc or {}).get("weights") or ((sc or {}).get("source") or {}).get("weights") or None
    w = weights
    if w is None and sc_w:
        w = sc_w.get("path")
        if w and not Path(w).is_file():
            raise EdgeError(
                f"{where} says {path} was exported from weights {w}, which is not found here; pass --weights"
            )
    if w is not None and sc_w and sc_w.get("sha256"):
        got = file_sha256(w)
        if got != sc_w["sha256"]:
            raise EdgeError(
                f"weights {w} (sha256 {got[:12]}...) are not the ones {path} was exported from "
                f"(sidecar sha256 {str(sc_w['sha256'])[:12]}..., file {sc_w.get('path')})"
            )
    seed = int((sc or {}).get("seed") or 0)  # exported from seeded random weights: the reference uses the same seed
    pre = None
    layout = None
    if sc:
        try:
            if sc.get("preprocess"):
                pre = Preprocess.from_dict(sc["preprocess"])
            layout = (sc.get("input") or {}).get("layout")
        except (KeyError, TypeError, ValueError) as e:
            raise EdgeError(f"{where} has a malformed 'preprocess' entry: {e}") from e
        if layout not in (None, "nchw", "nhwc"):
            raise EdgeError(f"{where}: input layout must be 'nchw' or 'nhwc', got {layout!r}")
    nc = (sc or {}).get("num_classes")
    precision = str((sc or {}).get("precision") or guess_precision(path, fmt))
    return ArtifactPlan(path, fmt, sc, name, w, int(nc) if nc else None, pre, layout, precision, seed, where, model_file)


def guess_precision(path: str, fmt: str) -> str:
    """For an artifact nothing describes: 'int8' when it holds quantized tensors or Q/DQ nodes, else 'fp32'."""
    try:
        if fmt == "onnx":
            import onnx

            m = onnx.load(path, load_external_data=False)
            ops = {n.op_type for n in m.graph.node}
            return "int8" if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"} else "fp32"
        from shufflenet_edge.export.passes.graph import Graph

        g = Graph(Path(path).read_bytes())
        types = {g.dtype(i) for i in range(len(g.sg.tensors))}
        return "int8" if any(np.dtype(t).name in ("int8", "uint8") for t in types) else (
            "fp16" if any(np.dtype(t).name == "float16" for t in types) else "fp32")
    except Exception:  # noqa: BLE001  (loading errors are reported when the artifact is opened)
        return "fp32"


def _runner_input_hw(runner: Any, layout: str) -> tuple[int, int] | None:
    shp = list(runner.input_shape)
    if len(shp) != 4:
        return None
    h, w = (shp[1], shp[2]) if layout == "nhwc" else (shp[2], shp[3])
    return (h, w) if h > 0 and w > 0 else None


def runner_num_outputs(runner: Any) -> int | None:
    """Classes the artifact outputs (last dim of its first output), None if dynamic."""
    try:
        if hasattr(runner, "out"):
            shape = list(runner.out["shape"])
        else:
            shape = list(runner.sess.get_outputs()[0].shape)
        v = shape[-1]
        return int(v) if isinstance(v, (int, np.integer)) and v > 0 else None
    except Exception:  # noqa: BLE001
        return None


@dataclasses.dataclass(frozen=True)
class Reference:
    """Where the PyTorch model parity compares with comes from: a module (the Python API), a model file or a
    registry name (with `weights`), or, all None, what each artifact's record says."""

    module: Any = None
    model: str | None = None
    model_file: str | None = None
    weights: str | None = None


@dataclasses.dataclass(frozen=True)
class ParityOptions:
    """The gate (the user's `thresholds`, else each precision's default; none with `report_only`), the per-layer
    diagnosis, the threads, and where artifacts run: `targets` ("local", "ssh://user@host[:port]", "adb[:SERIAL]"),
    with per target kind ("ssh", "adb") its typed options (runtimes.targets)."""

    thresholds: Thresholds | None = None
    report_only: bool = False
    per_layer: bool = False
    per_layer_samples: int = 4
    threads: int = 1
    targets: tuple[str, ...] = ("local",)
    target_options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Case:
    """One artifact on one target, with the inputs it was fed: what a report row is made from."""

    plan: ArtifactPlan
    layout: str
    input_dtype: str
    inputs: Inputs
    labels: Any
    classes: Any
    source: str
    target: str = "local"
    runtime: str = ""


def run_parity(artifacts: Sequence[str], inputs: Inputs, reference: Reference | None = None,
               options: ParityOptions | None = None) -> dict[str, Any]:
    """The one parity engine (the `parity` command and `shufflenet_edge.parity`): every artifact and its PyTorch
    reference on the same inputs, every output compared, on every target; a JSON-able report."""
    from shufflenet_edge import __version__
    from shufflenet_edge.runtimes.targets import parse_target

    ref = reference or Reference()
    opts = options or ParityOptions()
    for t in opts.targets:
        parse_target(t)  # a bad target spec fails before anything runs
    plans = [plan_artifact(a, ref.model, ref.weights, ref.model_file) for a in artifacts]
    memo: dict[Any, Any] = {}
    models: dict[Any, Any] = {}
    rows = []
    for plan in plans:
        rows += _artifact_rows(plan, inputs, ref, opts, memo, models)
    return {
        "tool": f"shufflenet-edge {__version__}",
        "thresholds": opts.thresholds.to_dict() if opts.thresholds is not None else {},
        "report_only": opts.report_only,
        "targets": list(opts.targets),
        "artifacts": rows,
        "passed": all(r["passed"] for r in rows),
    }


def _artifact_rows(plan: ArtifactPlan, inputs: Inputs, ref: Reference, opts: ParityOptions, memo: dict[Any, Any],
                   models: dict[Any, Any]) -> list[dict[str, Any]]:
    """One artifact: its inputs, its reference model (built once per model), one row per target."""
    from shufflenet_edge.export.verify import torch_outputs

    runner = open_runner(plan.path, opts.threads)
    layout = plan.layout or runner.layout
    chw, pre = _input_of(plan, runner, layout)
    if inputs.kind == "default":
        inputs = recorded_inputs(plan.sidecar)
    x, folder_labels, source, classes = materialize(inputs, pre, memo, chw)
    x, source = _fit_inputs(x, chw, source)
    if ref.module is not None:
        ref_model = ref.module
    else:
        nc = plan.num_classes if plan.num_classes or plan.weights else runner_num_outputs(runner)
        src_kind = ((plan.sidecar or {}).get("source") or {}).get("kind")
        mkey = (plan.model, plan.model_file, plan.weights, nc, plan.seed,
                plan.path if src_kind not in (None, "registry") else None)
        if mkey not in models:
            models[mkey] = build_reference(plan, nc)
        ref_model = models[mkey]
    eval_mode(ref_model)
    refs = torch_outputs(ref_model, x)
    art = _artifact(plan, runner, layout)
    rows = []
    for target in opts.targets:
        outs, runtime_label = run_on_target(target, plan, art, runner, x, layout, opts.threads, opts.target_options)
        case = _Case(plan, layout, str(getattr(runner, "input_dtype", "float32")), inputs, folder_labels, classes,
                     source, target, runtime_label)
        rows.append(_parity_row(case, outs, refs, opts))
        if opts.per_layer and target == "local":
            from shufflenet_edge import per_layer as pl

            try:
                diag = pl.diagnose(plan.path, ref_model, x[:opts.per_layer_samples], layout=layout,
                                   sidecar=plan.sidecar)
                rows[-1]["per_layer"] = diag.to_dict()
            except EdgeError as e:
                rows[-1]["per_layer_unavailable"] = str(e)
    del runner
    return rows


def _input_of(plan: ArtifactPlan, runner: Any, layout: str) -> tuple[tuple[int, int, int], Any]:
    """The artifact's input (C, H, W) and its preprocessing."""
    from shufflenet_edge.data import Preprocess

    shp = [int(s) for s in runner.input_shape]
    if len(shp) != 4:
        raise EdgeError(f"{plan.path} takes a rank-{len(shp)} input {tuple(shp)}; expected an image batch (rank 4)")
    c = shp[3] if layout == "nhwc" else shp[1]
    if c != 3:
        raise EdgeError(
            f"wrong input layout for {plan.path}: {'its sidecar says' if plan.layout else 'assumed'} {layout.upper()} "
            f"but the model's input shape {tuple(shp)} has no 3 channels in that position"
        )
    hw = _runner_input_hw(runner, layout)
    pre = plan.preprocess
    if pre is None:
        if hw is None:
            raise EdgeError(f"{plan.path} has no sidecar and a dynamic input size; cannot tell how to feed it")
        pre = Preprocess.for_size(hw[0])
    if hw is None:
        hw = (pre.input_size, pre.input_size)
    return (c, hw[0], hw[1]), pre


def open_runner(path: str, threads: int = 1) -> Any:
    """The artifact in its runtime: what it takes (shape, dtype, layout guess) and, for a phone, how to quantize."""
    from shufflenet_edge.runtimes.runner import RunnerError, open_artifact

    try:
        return open_artifact(path, threads=threads)
    except RunnerError as e:
        raise EdgeError(str(e)) from e


def reference_model(name: str, weights: str | None, num_classes: int | None, seed: int = 0) -> Any:
    import warnings

    from shufflenet_edge.models.weights import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model(name, weights, num_classes=num_classes, seed=seed, warn=False)


def build_reference(plan: ArtifactPlan, num_classes: int | None) -> Any:
    """The PyTorch float model the artifact is compared with: `--model-file`, the model file or QAT origin its
    record names, or the registry model (with the artifact's weights or seed)."""
    from shufflenet_edge.api import load_model_file, rebuild_reference

    if plan.model_file:
        return load_model_file(plan.model_file, plan.weights)[0]
    src = ((plan.sidecar or {}).get("source") or {})
    if src.get("kind") in ("model_file", "python", "qat"):
        return rebuild_reference(plan.sidecar or {})
    return reference_model(plan.model, plan.weights, num_classes, plan.seed)


def _artifact(plan: ArtifactPlan, runner: Any, layout: str) -> Any:
    """The Artifact to run: its record, or for another tool's file what its runtime says."""
    from shufflenet_edge.export.artifact import Artifact

    side = plan.sidecar or {"format": plan.format, "path": plan.path, "model": plan.model, "precision": plan.precision,
                            "input": {"layout": layout}, "outputs": []}
    return Artifact(plan.path, side)


DEFAULT_SYNTHETIC = 32  # parity's default inputs: structured synthetic images, seed DEFAULT_SEED
DEFAULT_SEED = 0  # not the calibration's (export/calibration.py: seed 1234): the check images are held out


def check_inputs(calib: str | None, calibration_limit: int, images: str | None = None,
                 labels: str | None = None) -> Inputs:
    """The inputs export checks an int8 artifact on, which `parity` then uses by default for it (the sidecar
    records them): the user's labelled images (`images`: one sub-folder per class; `labels`: class names in model
    output order), all of them; else, with a calibration folder, its images that did not calibrate (the user's own
    data, held out); else the structured synthetic images parity uses anyway (seed 0; calibration used seed 1234)."""
    if images is not None:
        ins = Inputs("images", f"labelled images {images}", folder=str(images))
        if labels is not None:
            ins.label_names, ins.label_source = read_label_file(labels), f"label file {labels}"
        return ins
    if calib is None:
        return Inputs("synthetic", "synthetic", n_synthetic=DEFAULT_SYNTHETIC, seed=DEFAULT_SEED)
    return Inputs("held_out", f"held-out images of {calib}", folder=str(calib), limit=DEFAULT_SYNTHETIC,
                  calibration_limit=calibration_limit)


def inputs_spec(inputs: Inputs) -> dict[str, Any]:
    """What the sidecar records of `check_inputs`, and `recorded_inputs` reads back."""
    if inputs.kind == "images":
        return {"kind": "images", "folder": inputs.folder,
                "labels": inputs.label_source[len("label file "):] if inputs.label_source else None}
    if inputs.kind == "held_out":
        return {"kind": "held_out", "folder": inputs.folder, "n": inputs.limit,
                "calibration_limit": inputs.calibration_limit}
    return {"kind": "synthetic", "n": inputs.n_synthetic, "seed": inputs.seed}


def recorded_inputs(sidecar: dict[str, Any] | None) -> Inputs:
    """Parity's default for one artifact: the inputs its export checked int8 on, when recorded and still there;
    else the structured synthetic images."""
    spec = (((sidecar or {}).get("checks") or {}).get("int8_loss") or {}).get("inputs_spec") or {}
    if spec.get("kind") == "images" and spec.get("folder") and Path(spec["folder"]).is_dir():
        labels = spec.get("labels") if spec.get("labels") and Path(spec["labels"]).is_file() else None
        ins = check_inputs(None, 0, spec["folder"], labels)
        ins.source = f"the labelled images export checked it on ({spec['folder']})"
        return ins
    if spec.get("kind") == "held_out" and spec.get("folder") and Path(spec["folder"]).is_dir():
        return Inputs("held_out", f"the held-out images export checked it on ({spec['folder']})", folder=spec["folder"],
                      limit=int(spec.get("n") or DEFAULT_SYNTHETIC), calibration_limit=spec.get("calibration_limit"))
    return check_inputs(None, 0)


def recorded_gate(sidecar: dict[str, Any] | None) -> Thresholds | None:
    """The int8 budget an artifact's export judged it by (its sidecar), or None."""
    rec = (((sidecar or {}).get("checks") or {}).get("int8_loss") or {}).get("gate") or {}
    t = rec.get("thresholds") or {}
    names = {f.name for f in dataclasses.fields(Thresholds)}
    t = {k: v for k, v in t.items() if k in names}
    return Thresholds(**t) if t else None


def _held_out(inputs: Inputs, pre: Any) -> Any:
    """Up to `inputs.limit` images of the folder that calibration did not take (it takes `calibration_limit` spread
    evenly over the sorted files, export/calibration.py); the calibration images themselves when there are none
    left, said so."""
    from shufflenet_edge.data import ImageSet, list_images, load_image

    assert inputs.folder is not None and inputs.limit is not None
    files = list_images(inputs.folder)
    k = inputs.calibration_limit or 0
    used = set(files if len(files) <= k else [files[(i * len(files)) // k] for i in range(k)])
    rest = [f for f in files if f not in used]
    pick = rest or files
    if len(pick) > inputs.limit:
        pick = [pick[(i * len(pick)) // inputs.limit] for i in range(inputs.limit)]
    what = "not used for calibration" if rest else "the calibration images: the folder has no others"
    images = np.stack([pre(load_image(f)) for f in pick]).astype(np.float32)
    return ImageSet(images, [str(f) for f in pick], None, None,
                    f"image folder {inputs.folder} ({len(pick)} images, {what})")


def check_images(inputs: Inputs, pre: Any, chw: tuple[int, int, int]
                 ) -> tuple[np.ndarray, str, np.ndarray | None, list[str] | None]:
    """`check_inputs`' images at the artifact's input size: (inputs, where they came from, folder labels, class
    folder names); `map_labels` turns the labels into model classes."""
    x, labels, source, classes = materialize(inputs, pre, None, tuple(int(v) for v in chw))  # type: ignore[arg-type]
    x, source = _fit_inputs(x, tuple(int(v) for v in chw), source)  # type: ignore[arg-type]
    return x, source, labels, classes


def _fit_inputs(x: np.ndarray, chw: tuple[int, int, int], source: str) -> tuple[np.ndarray, str]:
    """Inputs at the artifact's own (possibly non-square) size: a bilinear resize, stated in the source."""
    if tuple(x.shape[1:]) == tuple(chw):
        return x, source
    if x.shape[1] != chw[0]:
        raise EdgeError(f"{source}: {x.shape[1]}-channel inputs for an artifact that takes {chw[0]} channels")
    import torch

    t = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=tuple(chw[1:]),
                                        mode="bilinear", align_corners=False)
    return t.numpy(), f"{source}, resized to {chw[1]}x{chw[2]} (bilinear)"


def run_on_target(target: str, plan: ArtifactPlan, art: Any, runner: Any, x: np.ndarray, layout: str, threads: int,
                  options: dict[str, Any]) -> tuple[list[np.ndarray], str]:
    """The artifact's float outputs for float NCHW inputs `x`, computed where `target` says: here every output in
    PyTorch's layout; on a board or phone the first output (what their runners return), flattened per input."""
    from shufflenet_edge.data import to_layout
    from shufflenet_edge.runtimes.targets import parse_target

    t = parse_target(target)
    t = parse_target(target, options.get(t.kind))
    if t.kind == "local":
        try:
            outs = art.run(x)
        except EdgeError:
            raise
        except Exception as e:  # runtimes raise their own types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgeError(f"running the artifact failed: {msg}") from e
        return outs, f"{runner.runtime} {runner.runtime_version}"
    xl = to_layout(x.astype(np.float32), layout)
    if t.kind == "ssh":
        from shufflenet_edge.runtimes.ssh import infer_ssh

        y, rec = infer_ssh(target, plan.path, xl, opts=t.options, threads=threads)
        env = rec.get("environment") or {}
        return [y.reshape(len(x), -1)], f"{rec.get('runtime')} {rec.get('version')} ({env.get('machine', '?')})"
    if t.kind == "adb":
        from shufflenet_edge.runtimes.adb import infer_adb

        if plan.format != "tflite":
            raise EdgeError(f"{plan.path}: parity on a phone runs .tflite artifacts (through the demo app)")
        raw = np.concatenate([runner.prepare(xl[i : i + 1]) for i in range(len(xl))])
        y, done = infer_adb(target, plan.path, raw, options=t.options.as_runner_options(), delegate=t.options.delegate,
                            threads=threads)
        scale, zp = runner.out["quantization"]
        yf = (y.astype(np.float32) - zp) * scale if y.dtype in (np.int8, np.uint8) and scale else y.astype(np.float32)
        return [yf.reshape(len(x), -1)], f"litert {done.get('runtime_version')} (demo app, {done.get('delegate')})"
    raise AssertionError(t.kind)


def _gate(plan: ArtifactPlan, thresholds: Thresholds | None, report_only: bool) -> tuple[Thresholds, str]:
    if report_only:
        return Thresholds(), "off (--report-only)"
    if thresholds is not None and thresholds.any():
        return thresholds, "user"
    recorded = recorded_gate(plan.sidecar)
    if recorded is not None:  # the budget export judged this artifact by: one verdict from both commands
        return recorded, f"the int8 budget its export met ({plan.info_source})"
    return default_gate(plan.precision), f"default for {plan.precision}"


def compare_outputs(outs: list[np.ndarray], refs: list[np.ndarray], gate: Thresholds,
                    labels: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per output: statistics, the gate that applies to it (no top-1/top-5 thresholds for an output that
    is not logits) and what it missed. A runner that returns outputs flattened per input (boards, phones) is
    compared flattened. Each row keeps its ParityStats under "stats" for the caller to drop."""
    rows = []
    for k, (out, ref) in enumerate(zip(outs, refs)):
        logits = ref.ndim == 2
        if out.shape != ref.shape:
            if out.size != ref.size:
                raise EdgeError(f"output {k}: the artifact gives {tuple(out.shape[1:])} per input, the PyTorch model "
                                f"{tuple(ref.shape[1:])} (pass --weights with the right head, or check the sidecar's "
                                "num_classes)")
            out = out.reshape(ref.shape)
        st = compare(out, ref, labels if logits else None, logits=logits)
        g = gate if logits else dataclasses.replace(gate, min_top1_agreement=None, min_top5_overlap=None,
                                                    max_accuracy_drop=None)
        bad = violations(st, g)
        rows.append({"output": k, "shape": list(ref.shape), "logits": logits, "metrics": st.to_dict(),
                     "summary": st.summary(), "gate": g.to_dict(), "passed": not bad, "failures": bad, "stats": st})
    return rows


def _parity_row(case: _Case, outs: list[np.ndarray], refs: list[np.ndarray], opts: ParityOptions) -> dict[str, Any]:
    """The report row of one artifact on one target: every output compared; the headline metrics are the first
    output's (a classifier's logits)."""
    plan, inputs, report_only = case.plan, case.inputs, opts.report_only
    folder_labels, classes = case.labels, case.classes
    names: list[str] | None = inputs.label_names
    names_source = inputs.label_source
    if not names:
        sc_labels = (plan.sidecar or {}).get("labels")
        names = [str(v) for v in sc_labels] if isinstance(sc_labels, list) and sc_labels else None
        names_source = f"the labels recorded in {plan.info_source}" if names else None
    if refs[0].ndim == 2:
        labels, label_mapping = map_labels(folder_labels, classes, refs[0].shape[1], names, names_source)
    else:
        labels, label_mapping = None, ("no accuracy: the first output is not logits" if folder_labels is not None else None)
    gate, gate_source = _gate(plan, opts.thresholds, report_only)
    compared = compare_outputs(outs, refs[: len(outs)], gate, labels)
    bad = [f"output {r['output']}: {f}" if len(refs) > 1 else f for r in compared for f in r["failures"]]
    st = compared[0]["stats"]
    for r in compared:
        del r["stats"]
    return {
        "artifact": plan.path,
        "format": plan.format,
        "precision": plan.precision,
        "form": (plan.sidecar or {}).get("form"),
        "model": plan.model,
        "weights": plan.weights,
        "random_weights": plan.weights is None and not plan.model_file and
                          ((plan.sidecar or {}).get("source") or {}).get("kind") in (None, "registry"),
        "sidecar": bool(plan.info_source) and not str(plan.info_source).startswith("embedded"),
        "described_by": plan.info_source,
        "gate": {"source": gate_source, "thresholds": gate.to_dict()},
        "layout": case.layout,
        "input_dtype": case.input_dtype,
        "runtime": case.runtime,
        "target": case.target,
        "inputs": case.source,
        "label_mapping": label_mapping,
        "metrics": st.to_dict(),
        "summary": st.summary(),
        "outputs": compared,
        "outputs_compared": f"{len(outs)} of {len(refs)}" + ("" if len(outs) == len(refs) else
                                                             " (the target's runner returns the first output)"),
        "passed": not bad,
        "status": "report" if report_only else ("ok" if not bad else "FAIL"),
        "failures": bad,
    }


# --------------------------------------------------------------------------------------------- report


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def format_table(report: dict[str, Any]) -> str:
    lines = []
    sources = sorted({r["inputs"] for r in report["artifacts"]})
    for s in sources:
        lines.append(f"inputs: {s}")
    for m in sorted({r["label_mapping"] for r in report["artifacts"] if r.get("label_mapping")}):
        lines.append(f"labels: {m}")
    if any(r["random_weights"] for r in report["artifacts"]):
        lines.append("note: reference uses seeded random weights (no --weights): agreement says little about int8 quality")
    hdr = (f"{'artifact':<34} {'prec':<5} {'layout':<6} {'max abs':>9} {'mean abs':>9} {'cosine':>9} {'PSNR dB':>8} "
           f"{'top1 agr%':>9} {'top5 ovl%':>9} {'acc ref%':>8} {'acc%':>7} {'status':<6}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    remote = any(r.get("target", "local") != "local" for r in report["artifacts"])
    for r in report["artifacts"]:
        m = r["metrics"]
        name = Path(r["artifact"]).name
        if remote:  # one row per target: say which
            name = f"{name} @{r.get('target', 'local')}"
        if len(name) > 34:
            name = "..." + name[-31:]
        psnr = "inf" if m["psnr_db"] is None else f"{m['psnr_db']:.1f}"
        lines.append(
            f"{name:<34} {r['precision'][:5]:<5} {r['layout']:<6} {m['max_abs_error']:>9.2e} {m['mean_abs_error']:>9.2e} "
            f"{m['cosine_mean']:>9.6f} {psnr:>8} {_pct(m['top1_agreement']):>9} {_pct(m['top5_overlap']):>9} "
            f"{_pct(m['ref_top1_accuracy']):>8} {_pct(m['top1_accuracy']):>7} {r.get('status') or ('ok' if r['passed'] else 'FAIL'):<6}"
        )
    for r in report["artifacts"]:  # every output of a model with several (the row above is output 0's)
        outs = r.get("outputs") or []
        if len(outs) > 1 or (outs and not outs[0].get("logits", True)):
            lines.append(f"{Path(r['artifact']).name}: {r.get('outputs_compared', len(outs))} outputs compared")
            for o in outs:
                lines.append(f"  output {o['output']} {tuple(o['shape'])}: {'ok' if o['passed'] else 'FAIL'}  {o['summary']}")
    for r in report["artifacts"]:
        if r.get("per_layer_unavailable"):
            lines.append(f"per-layer: {Path(r['artifact']).name}: {r['per_layer_unavailable']}")
        for f in r["failures"]:
            lines.append(f"FAIL {Path(r['artifact']).name}: {f}")
    if remote:
        for r in report["artifacts"]:
            lines.append(f"{Path(r['artifact']).name} @{r.get('target', 'local')}: {r['runtime']}")
    gates: dict[str, list[str]] = {}
    for r in report["artifacts"]:
        g = r.get("gate") or {}
        desc = format_gate(g.get("thresholds") or {}) if g.get("thresholds") else "none"
        gates.setdefault(f"gate ({g.get('source', 'user')}): {desc}", []).append(Path(r["artifact"]).name)
    for line, names in gates.items():
        lines.append(line + ("" if len(gates) == 1 else f"  [{', '.join(names)}]"))
    if any(r.get("described_by") and not r.get("sidecar") for r in report["artifacts"]):
        for r in report["artifacts"]:
            if r.get("described_by") and not r.get("sidecar"):
                lines.append(f"note: {Path(r['artifact']).name} has no sidecar; described by its {r['described_by'].split(' of ')[0]}")
    for r in report["artifacts"]:
        if "per_layer" in r:
            from shufflenet_edge.per_layer import format_per_layer

            lines.append("")
            lines.append(f"per-layer: {r['artifact']}")
            lines.append(format_per_layer(r["per_layer"]))
    return "\n".join(lines)


_GATE_TEXT = {
    "max_abs_error": ("max abs error", "<=", "{:.3g}"),
    "max_rel_error": ("relative max error", "<=", "{:.3g}"),
    "min_psnr": ("PSNR", ">=", "{:g} dB"),
    "min_top1_agreement": ("top-1 agreement", ">=", "{:.0%}"),
    "min_top5_overlap": ("top-5 overlap", ">=", "{:.0%}"),
    "min_cosine": ("min cosine", ">=", "{:.6f}"),
    "max_accuracy_drop": ("top-1 accuracy drop", "<=", "{:g} points"),
}


def format_gate(t: dict[str, Any]) -> str:
    return ", ".join(f"{_GATE_TEXT[k][0]} {_GATE_TEXT[k][1]} {_GATE_TEXT[k][2].format(v)}" for k, v in t.items() if k in _GATE_TEXT)
