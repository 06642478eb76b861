"""Pass: embed the preprocessing constants and labels in the model as a metadata entry.

Why: an app or a benchmark tool that gets only the .tflite should still know how to feed it. The
standard TFLITE_METADATA writer lives in tflite-support, which is deprecated and no longer maintained,
so we do not depend on it; instead a plain JSON entry named ``shufflenet_edge`` (input size, layout,
mean/std, input quantization, labels) is added to the model's metadata table. Interpreters ignore
unknown metadata; ``read()`` gets it back. The sidecar JSON remains the full record.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from shufflenet_edge.export.passes.graph import Graph, schema

NAME = "shufflenet_edge"


def run(g: Graph, info: dict[str, Any]) -> dict[str, Any]:
    payload = json.dumps(info, sort_keys=True).encode()
    b = schema().BufferT()
    b.data = np.frombuffer(payload, dtype=np.uint8)
    g.model.buffers.append(b)
    md = schema().MetadataT()
    md.name = NAME.encode()
    md.buffer = len(g.model.buffers) - 1
    g.model.metadata = [m for m in (g.model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != NAME]
    g.model.metadata.append(md)
    return {"pass": "metadata", "entry": NAME, "bytes": len(payload)}


def read(buf: bytes) -> dict[str, Any] | None:
    g = Graph(buf)
    for m in g.model.metadata or []:
        name = m.name.decode() if isinstance(m.name, bytes) else m.name
        if name == NAME:
            data = g.model.buffers[m.buffer].data
            return json.loads(np.asarray(data, dtype=np.uint8).tobytes().decode())  # type: ignore[no-any-return]
    return None
