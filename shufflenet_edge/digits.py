"""A real, installable dataset for judging int8: scikit-learn's handwritten digits, as RGB images.

No pretrained ImageNet weights can be downloaded here, and random weights make int8 error look better or
worse than it is (docs/design.md, int8). So we train ShuffleNets on the 1,797 8x8 digits that ship inside
scikit-learn, upscaled to RGB, with a fixed stratified train/test split.

The images go through the same preprocessing every artifact records in its sidecar
(`Preprocess.for_size(input_size)`: resize the short side to `resize_size`, centre crop, ImageNet mean and
std). Each digit is drawn upscaled to `input_size` x `input_size` and centred on a black canvas of
`resize_size` pixels, so the resize is the identity and the crop cuts exactly the margin: the tensors we
train on are bit-identical to what any consumer of the PNG folder (`write_image_folder`) gets through the
sidecar's preprocessing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_edge.data import Preprocess
from shufflenet_edge.errors import EdgeError
from shufflenet_edge.paths import cache_lock

DEFAULT_INPUT_SIZE = 32
TEST_FRACTION = 0.3
SPLIT_SEED = 0
NUM_CLASSES = 10
CLASSES = [str(i) for i in range(NUM_CLASSES)]
TRAIN_MODELS = ("shufflenet_v2_x0_5", "shufflenet_v1_x0_5_g3")
# Bump when the data or the training recipe changes: cached checkpoints with another recipe are retrained.
RECIPE = "digits-v1"


def default_cache_dir() -> Path:
    from shufflenet_edge.paths import cache_dir

    return cache_dir("digits")


def preprocess(input_size: int = DEFAULT_INPUT_SIZE) -> Preprocess:
    """The preprocessing the digits models are trained with: the standard one for this input size."""
    return Preprocess.for_size(input_size)


def render(digit_8x8: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """One 8x8 digit (values 0..16) -> uint8 RGB canvas of resize_size pixels, digit centred at input_size."""
    from PIL import Image

    pre = preprocess(input_size)
    gray = np.clip(np.asarray(digit_8x8, np.float32) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    big = Image.fromarray(gray).resize((input_size, input_size), Image.Resampling.BILINEAR)
    canvas = np.zeros((pre.resize_size, pre.resize_size), np.uint8)
    # Same rounding as Preprocess.resize_and_crop, so its centre crop is exactly the digit.
    off = int(round((pre.resize_size - input_size) / 2.0))
    canvas[off : off + input_size, off : off + input_size] = np.asarray(big)
    return np.repeat(canvas[:, :, None], 3, axis=2)


@dataclasses.dataclass
class DigitsSplit:
    """Raw canvases (uint8 N x R x R x 3), preprocessed model inputs (float32 N x 3 x S x S), labels."""

    name: str
    raw: np.ndarray
    x: np.ndarray
    y: np.ndarray
    index: np.ndarray  # positions in sklearn's load_digits order

    def take(self, ids: np.ndarray) -> DigitsSplit:
        return DigitsSplit(self.name, self.raw[ids], self.x[ids], self.y[ids], self.index[ids])

    def per_class(self, n: int) -> DigitsSplit:
        """The first n images of each class (in dataset order)."""
        ids = np.concatenate([np.flatnonzero(self.y == c)[:n] for c in range(NUM_CLASSES)])
        return self.take(np.sort(ids))

    def interleaved(self) -> np.ndarray:
        """Indices that cycle through the classes (0, 1, ..., 9, 0, 1, ...): any prefix is balanced."""
        by_class = [list(np.flatnonzero(self.y == c)) for c in range(NUM_CLASSES)]
        order = []
        while any(by_class):
            for q in by_class:
                if q:
                    order.append(q.pop(0))
        return np.asarray(order)


def split_indices(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified split: (train indices, test indices) into load_digits()."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    idx = np.arange(len(target))
    tr, te = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=target)
    return np.sort(tr), np.sort(te)


def load(input_size: int = DEFAULT_INPUT_SIZE) -> tuple[DigitsSplit, DigitsSplit]:
    """(train, test) splits, rendered and preprocessed for `input_size`."""
    from PIL import Image
    from sklearn.datasets import load_digits

    if input_size < 32:
        raise ValueError(f"input size must be >= 32 (the networks downsample by 32), got {input_size}")
    d = load_digits()
    pre = preprocess(input_size)
    tr, te = split_indices()
    out = []
    for name, ids in (("train", tr), ("test", te)):
        raw = np.stack([render(d.images[i], input_size) for i in ids])
        x = np.stack([pre(Image.fromarray(r)) for r in raw]).astype(np.float32)
        out.append(DigitsSplit(name, raw, x, d.target[ids].astype(np.int64), ids))
    return out[0], out[1]


def write_image_folder(split: DigitsSplit, folder: str | os.PathLike[str]) -> Path:
    """Write an ImageNet-style folder: one sub-folder per class ("0".."9"), one PNG per image.

    Written to a temporary folder beside the target, then renamed, so a folder that exists is complete.
    """
    import shutil
    import tempfile

    from PIL import Image

    dest = Path(folder)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for c in CLASSES:
            (tmp / c).mkdir()
        for raw, label, i in zip(split.raw, split.y, split.index):
            Image.fromarray(raw).save(tmp / str(int(label)) / f"digit_{int(i):04d}.png")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def write_calibration_folder(split: DigitsSplit, folder: str | os.PathLike[str], n: int | None = None) -> Path:
    """A flat folder of PNGs whose sorted order cycles through the classes.

    Calibration loaders take the first N files in sorted order; in a class-per-folder layout that is one
    or two classes only. Here every prefix of the sorted list is class-balanced.
    """
    import shutil
    import tempfile

    from PIL import Image

    ids = split.interleaved()[:n]
    dest = Path(folder)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for k, i in enumerate(ids):
            Image.fromarray(split.raw[i]).save(tmp / f"{k:05d}_class{int(split.y[i])}.png")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# ---------------------------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a digits model is trained. The defaults are what benchmarks/train_digits.py uses."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    shift: int = 2  # random translation, in pixels of the model input
    seed: int = 0
    # One intra-op thread: this network is too small for two to help (measured on a 2-core machine:
    # 0.06 CPU-s per step of 64 images with 1 thread; with 2 threads the OpenMP workers wait on each other,
    # up to 7x slower when other processes share the cores). Results are reproducible per thread count.
    threads: int = 1


def _augment(x: Any, shift: int, gen: Any) -> Any:
    """Random translation of each image by up to `shift` pixels, filled with the background value."""
    import torch

    if shift <= 0:
        return x
    n, _, h, w = x.shape
    bg = x[:, :, :1, :1].expand(-1, -1, h + 2 * shift, w + 2 * shift).clone()
    bg[:, :, shift : shift + h, shift : shift + w] = x
    d = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([bg[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(d)])


def evaluate(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of a float model on float NCHW inputs."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(x[i : i + batch_size])).numpy())
    return np.concatenate(outs)


def train(
    model_name: str,
    train_split: DigitsSplit,
    test_split: DigitsSplit | None = None,
    recipe: Recipe = Recipe(),
    log: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a registered model on the digits from its seeded initialisation. Deterministic on CPU."""
    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _train(model_name, train_split, test_split, recipe, log)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    model_name: str,
    train_split: DigitsSplit,
    test_split: DigitsSplit | None,
    recipe: Recipe,
    log: Callable[[str], None] | None,
) -> tuple[Any, dict[str, Any]]:
    import torch
    from torch import nn

    from shufflenet_edge.models.registry import build_model

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = build_model(model_name, num_classes=NUM_CLASSES, seed=recipe.seed)
    x = torch.from_numpy(train_split.x)
    y = torch.from_numpy(train_split.y)
    steps_per_epoch = -(-len(x) // recipe.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, epochs=recipe.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    t0 = time.perf_counter()
    c0 = time.process_time()
    history = []
    for epoch in range(recipe.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for s in range(steps_per_epoch):
            b = perm[s * recipe.batch_size : (s + 1) * recipe.batch_size]
            if len(b) < 2:  # BatchNorm needs two samples
                continue
            xb = _augment(x[b], recipe.shift, gen)
            loss = loss_fn(model(xb), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": total / len(x), "seconds": time.perf_counter() - t0}
        if test_split is not None and (epoch + 1 == recipe.epochs or (epoch + 1) % 5 == 0):
            row["test_accuracy"] = float((evaluate(model, test_split.x).argmax(1) == test_split.y).mean())
        history.append(row)
        if log:
            acc = f" test acc {row['test_accuracy']:.4f}" if "test_accuracy" in row else ""
            log(f"{model_name} epoch {epoch + 1}/{recipe.epochs} loss {row['loss']:.4f}{acc} ({row['seconds']:.0f} s)")
    model.eval()
    info: dict[str, Any] = {
        "model": model_name,
        "recipe": RECIPE,
        "hyperparameters": dataclasses.asdict(recipe),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "train_cpu_seconds": round(time.process_time() - c0, 1),  # all threads; wall time suffers from other load
        "threads": torch.get_num_threads(),
        "train_images": int(len(x)),
        "history": history,
    }
    if test_split is not None:
        info["test_images"] = int(len(test_split.x))
        info["test_accuracy"] = float((evaluate(model, test_split.x).argmax(1) == test_split.y).mean())
    return model, info


def checkpoint_path(model_name: str, input_size: int, cache_dir: str | os.PathLike[str] | None = None,
                    epochs: int | None = None) -> Path:
    tag = f"_e{epochs}" if epochs is not None and epochs != Recipe().epochs else ""
    return Path(cache_dir or default_cache_dir()) / f"{model_name}_digits{input_size}{tag}.pth"


def save_checkpoint(model: Any, info: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """torchvision-format state dict (`.pth`) plus `<path>.json` with the training record; atomic writes."""
    import torch

    from shufflenet_edge.files import atomic_path, write_json_atomic

    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json_atomic(info, p.with_name(p.name + ".json"))
    return p


def read_checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    meta = Path(str(path) + ".json")
    try:
        return json.loads(meta.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def ensure_trained(
    model_name: str,
    input_size: int = DEFAULT_INPUT_SIZE,
    cache_dir: str | os.PathLike[str] | None = None,
    recipe: Recipe = Recipe(),
    splits: tuple[DigitsSplit, DigitsSplit] | None = None,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The cached checkpoint for (model, input size, recipe), trained now if missing or stale."""
    path = checkpoint_path(model_name, input_size, cache_dir, recipe.epochs)
    with cache_lock(path):  # another process training the same checkpoint: wait for it, then reuse it
        return _ensure_trained_locked(path, model_name, input_size, recipe, splits, retrain, log)


def _ensure_trained_locked(path: Path, model_name: str, input_size: int, recipe: Recipe,
                           splits: tuple[DigitsSplit, DigitsSplit] | None, retrain: bool,
                           log: Callable[[str], None] | None) -> tuple[Path, dict[str, Any]]:
    info = read_checkpoint_info(path)
    if (not retrain and path.is_file() and info is not None and info.get("recipe") == RECIPE
            and info.get("hyperparameters") == dataclasses.asdict(recipe) and info.get("input_size") == input_size):
        return path, info
    train_split, test_split = splits or load(input_size)
    model, info = train(model_name, train_split, test_split, recipe, log=log)
    info["input_size"] = input_size
    info["preprocess"] = preprocess(input_size).to_dict()
    info["split"] = {"test_fraction": TEST_FRACTION, "seed": SPLIT_SEED, "stratified": True}
    save_checkpoint(model, info, path)
    # Both paths return what the JSON record holds (one serialization): a fresh training and a cache hit
    # give equal dicts (lists, not the tuples the in-memory record had).
    saved = read_checkpoint_info(path)
    if saved is None:
        raise EdgeError(f"cannot read back the training record {path}.json")
    return path, saved


def check_dataset_available() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise EdgeError("the digits dataset needs scikit-learn: pip install scikit-learn") from e
