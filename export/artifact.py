"""An exported file and its record: `Artifact(path, sidecar)`.

`run(x)` feeds float NCHW inputs the way the artifact wants them (NHWC for TFLite, quantized for int8 inputs)
and returns every output in PyTorch's layout, so export checks, parity and the Python API compare like with like.
The sidecar also reads like the dict it is written as (``art["graph"]``), which keeps scripts that used the
returned dict working.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from shufflenet_edge.export.sidecar import Sidecar

from shufflenet_edge.errors import EdgeError


class Artifact(Mapping[str, Any]):
    def __init__(self, path: str | os.PathLike[str], sidecar: Sidecar | dict[str, Any]) -> None:
        self.path = Path(path)
        self.sidecar = sidecar if isinstance(sidecar, Sidecar) else Sidecar.from_dict(sidecar)
        self._dict = self.sidecar.to_dict()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Artifact:
        """The artifact at `path` with its sidecar, or the identity embedded in the file when the sidecar is gone."""
        from shufflenet_edge.export.common import artifact_info, missing_identity_hint

        info, _ = artifact_info(path)
        if info is None:
            raise EdgeError(missing_identity_hint(path))
        return cls(path, info)

    @property
    def format(self) -> str:
        return self.sidecar.format or ("onnx" if self.path.suffix.lower() == ".onnx" else "tflite")

    def run(self, x_nchw: np.ndarray) -> list[np.ndarray]:
        """Every output for float NCHW inputs (N, C, H, W), each in PyTorch's layout (NHWC outputs transposed back)."""
        from shufflenet_edge.export.pipeline import backend

        x_nchw = np.ascontiguousarray(x_nchw, dtype=np.float32)
        nhwc_in = (self.sidecar.input or {}).get("layout", "nhwc" if self.format == "tflite" else "nchw") == "nhwc"
        x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)) if nhwc_in else x_nchw
        ys = backend(self.format).run(self.path, x)
        lays = [o.get("layout") for o in self.sidecar.outputs] or [None] * len(ys)
        return [np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if lay == "nhwc" and y.ndim == 4 else y
                for y, lay in zip(ys, lays)]

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __repr__(self) -> str:
        return f"Artifact({str(self.path)!r}, {self.sidecar.format}, {self.sidecar.precision}, form {self.sidecar.form})"
