"""Calibration data for int8: a folder of images through the model's own preprocessing, or a stated
synthetic fallback. The sidecar records which."""

from __future__ import annotations

from shufflenet_edge.data import ImageSet, Preprocess, load_image_folder, synthetic_images

DEFAULT_CALIBRATION_IMAGES = 64


def calibration_set(calib: str | None, pre: Preprocess, limit: int = DEFAULT_CALIBRATION_IMAGES) -> ImageSet:
    if calib is None:
        return synthetic_images(min(limit, 32), pre, seed=1234)
    return load_image_folder(calib, pre, limit=limit)


def describe(images: ImageSet) -> str:
    return images.source
