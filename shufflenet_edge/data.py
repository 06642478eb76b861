"""Preprocessing (one place for the constants), image folders and calibration data.

The constants travel with every artifact: exporters write them into the sidecar JSON, the Android
assets step copies them into the app, and the golden vectors of the Java core come from here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_edge.errors import EdgeError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".gif", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """torchvision's ImageNet evaluation transform: resize the short side, centre crop, normalize."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    # Channel order of the model input; mean and std are given in that order. megvii's ShuffleNet-Series
    # models take BGR in 0..255 (their ToBGRTensor): channel_order "bgr", mean 0, std 1/255.
    channel_order: str = "rgb"

    @classmethod
    def for_size(cls, input_size: int) -> Preprocess:
        return cls(input_size=input_size, resize_size=int(round(input_size * 256 / 224)))

    @classmethod
    def for_model(cls, name: str | None, input_size: int) -> Preprocess:
        """The preprocessing a registered model was trained with (torchvision's unless the registry says)."""
        base = cls.for_size(input_size)
        if name:
            from shufflenet_edge.models.registry import get_info

            try:
                kind = get_info(name).preprocess
            except Exception:  # noqa: BLE001  (a user model's label, not a registry name)
                kind = "torchvision"
            if kind == "megvii":
                return dataclasses.replace(base, mean=(0.0, 0.0, 0.0), std=(1 / 255.0,) * 3, channel_order="bgr")
        return base

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            input_size=int(d["input_size"]),
            resize_size=int(d["resize_size"]),
            mean=tuple(d["mean"]),  # type: ignore[arg-type]
            std=tuple(d["std"]),  # type: ignore[arg-type]
            interpolation=str(d.get("interpolation", "bilinear")),
            channel_order=str(d.get("channel_order", "rgb")),
        )

    def resize_and_crop(self, img: Any) -> np.ndarray:
        """PIL image -> uint8 HWC array of input_size x input_size, RGB."""
        from PIL import Image

        img = img.convert("RGB")
        w, h = img.size
        s = self.resize_size
        if w <= h:
            nw, nh = s, max(1, int(round(h * s / w)))
        else:
            nw, nh = max(1, int(round(w * s / h))), s
        img = img.resize((nw, nh), Image.BILINEAR)
        left = int(round((nw - self.input_size) / 2.0))
        top = int(round((nh - self.input_size) / 2.0))
        img = img.crop((left, top, left + self.input_size, top + self.input_size))
        return np.asarray(img, dtype=np.uint8)

    def normalize(self, hwc_uint8: np.ndarray) -> np.ndarray:
        """uint8 HWC -> float32 CHW, (x/255 - mean) / std."""
        x = hwc_uint8.astype(np.float32) / 255.0
        if self.channel_order == "bgr":
            x = x[:, :, ::-1]
        elif self.channel_order != "rgb":
            raise EdgeError(f"channel order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def __call__(self, img: Any) -> np.ndarray:
        return self.normalize(self.resize_and_crop(img))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    p = Path(folder)
    if not p.exists():
        raise EdgeError(f"image folder not found: {p}")
    if not p.is_dir():
        raise EdgeError(f"not a folder: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise EdgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {p}")
    return files


def load_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise EdgeError(f"cannot read image {path}: {e}") from e


@dataclasses.dataclass
class ImageSet:
    """Preprocessed images (N, 3, H, W float32) with optional labels from class sub-folders."""

    images: np.ndarray
    paths: list[str]
    labels: np.ndarray | None
    classes: list[str] | None
    source: str


def load_image_folder(
    folder: str | os.PathLike[str], pre: Preprocess, limit: int | None = None
) -> ImageSet:
    """Load and preprocess images. Sub-folders of `folder` that hold images are classes (ImageNet layout)."""
    files = list_images(folder)
    root = Path(folder)
    if limit is not None and len(files) > limit:
        # Spread over the whole (sorted) folder, so class sub-folders are all represented.
        files = [files[(i * len(files)) // limit] for i in range(limit)]
    classes = sorted({f.parent.name for f in files if f.parent != root})
    labelled = bool(classes) and all(f.parent != root for f in files)
    arrays = [pre(load_image(f)) for f in files]
    labels = np.asarray([classes.index(f.parent.name) for f in files]) if labelled else None
    return ImageSet(
        images=np.stack(arrays).astype(np.float32),
        paths=[str(f) for f in files],
        labels=labels,
        classes=classes if labelled else None,
        source=f"image folder {root} ({len(files)} images)",
    )


def synthetic_images(n: int, pre: Preprocess, seed: int = 0) -> ImageSet:
    """Structured synthetic images (gradients, blobs, stripes) through the same normalization.

    Used when no calibration folder is given; stated as such in every sidecar that used it.
    """
    rng = np.random.default_rng(seed)
    s = pre.input_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / max(1, s - 1)
    out = []
    for _ in range(n):
        img = np.zeros((s, s, 3), np.float32)
        for c in range(3):
            a, b, f, ph = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1, 8), rng.uniform(0, 6.3)
            img[..., c] = 0.5 + 0.25 * (a * xx + b * yy) + 0.2 * np.sin(f * (xx * a + yy * b) * 6.28 + ph)
        for _ in range(3):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            img[mask] = rng.uniform(0, 1, 3)
        img += rng.normal(0, 0.03, img.shape)
        u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
        out.append(pre.normalize(u8))
    return ImageSet(np.stack(out), [f"synthetic:{i}" for i in range(n)], None, None,
                    f"synthetic structured images (seed {seed}, {n} images): no real data")


def batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i : i + size]


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """NCHW float array -> the artifact's layout."""
    if layout == "nchw":
        return x
    if layout == "nhwc":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")


def labels_for(classes: Sequence[str] | None, num_classes: int) -> list[str]:
    return list(classes) if classes and len(classes) == num_classes else [f"class_{i}" for i in range(num_classes)]
