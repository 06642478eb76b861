"""ONNX int8: onnxruntime static QDQ quantization, per-channel weights, after quant_pre_process."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from shufflenet_edge.export.calibration import calibration_set

from shufflenet_edge.data import Preprocess


def quantize_onnx_int8(src: Path, dst: Path, pre: Preprocess, calib: str | None, batch: int = 1,
                       input_hw: tuple[int, int] | None = None) -> str:
    """Quantize float `src` into `dst`; returns the description of the calibration data. `input_hw`: the
    model's input size when it is not `pre`'s square (calibration images are resized to it, stated)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration_set(calib, pre)
    if input_hw is not None and tuple(images.images.shape[2:]) != tuple(input_hw):
        from shufflenet_edge.export.tflite_export import _resize_images

        images = _resize_images(images, (3, *input_hw))
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(range(0, len(images.images), batch))

        def get_next(self):  # type: ignore[no-untyped-def]
            i = next(self.it, None)
            if i is None:
                return None
            chunk = images.images[i : i + batch]
            if len(chunk) < batch:
                return None
            return {input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

    with tempfile.TemporaryDirectory() as td:
        prep = Path(td) / "prep.onnx"
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        quantize_static(
            str(prep), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    return images.source
