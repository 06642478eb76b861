"""The artifact record: what every exported file is, as one typed `Sidecar` written beside it (``<file>.json``)
and embedded in it (its identity part).

Both formats and every path (registry names, `--model-file`, Python modules, QAT) write the same keys under one
schema string. `Sidecar.from_dict` also reads the records written before the schema existed (no ``schema`` key):
their ONNX-only ``float_check`` / ``int8_loss`` move under ``checks`` as today's files keep them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SCHEMA = "shufflenet-edge/artifact/2"


@dataclasses.dataclass
class Sidecar:
    format: str  # onnx | tflite
    path: str
    model: str  # registry name or the user's label
    precision: str  # fp32 | fp16 | int8
    form: str  # the graph form that shipped (reference, gather, transpose, cpu, delegate)
    input: dict[str, Any]
    outputs: list[dict[str, Any]]  # every output, in order: name, shape, dtype, layout, quantization
    preprocess: dict[str, Any] | None
    source: dict[str, Any]  # how to rebuild the float reference: registry name + weights/seed, model file, QAT
    recipe: str | None = None  # TFLite: the pass recipe of the form
    num_classes: int | None = None  # when the one output is logits
    weights: dict[str, Any] | None = None
    random_weights: bool = False
    seed: int | None = None
    labels: Any = None
    calibration: str | None = None
    calibration_method: str | None = None
    quantization_scheme: str | None = None
    int8_weights: str | None = None
    keep_float: list[str] | None = None
    float_nodes: list[str] | None = None  # ONNX int8: nodes left in float by --keep-float
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)  # float / int8 checks, int8_loss
    form_timings: dict[str, Any] | None = None
    passes: list[dict[str, Any]] | None = None  # TFLite graph passes
    fold: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None  # candidates left out (the fold's failures) and what shipped instead
    graph: dict[str, Any] | None = None
    tools: dict[str, str] = dataclasses.field(default_factory=dict)
    opset: int | None = None
    qat: bool = False
    note: str | None = None
    deployment_note: str | None = None  # what a runtime needs to reproduce these numbers (ONNX int8 on x86)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys other tools or scripts added
    schema: str = SCHEMA

    @property
    def output(self) -> dict[str, Any]:
        return self.outputs[0]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["output"] = self.outputs[0] if self.outputs else None  # the first output, for readers of one-output files
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sidecar:
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        if "schema" not in d:  # written before the schema: the ONNX exporter kept its checks at the top level
            checks = dict(d.get("checks") or {})
            if d.get("float_check"):
                fc = d.pop("float_check")
                checks.setdefault("vs_torch_max_abs_error", fc.get("max_abs_error_vs_torch"))
                checks.setdefault("tolerance", fc.get("tolerance"))
                checks.setdefault("per_output", fc.get("per_output"))
            if d.get("int8_loss"):
                checks.setdefault("int8_loss", d.pop("int8_loss"))
            d["checks"] = checks
            d.setdefault("source", {"kind": "registry", "name": d.get("model")})
            d["schema"] = SCHEMA
        # a writer that knows one output may give only "output"; the record keeps the list
        if not d.get("outputs") and d.get("output"):
            d["outputs"] = [d["output"]]
        d.pop("output", None)
        d.pop("int8_loss", None)
        d.pop("float_check", None)
        extra = {**(d.pop("extra", None) or {})}
        extra.update({k: d.pop(k) for k in list(d) if k not in names})
        for k in ("format", "path", "model", "precision", "form", "input", "preprocess"):
            d.setdefault(k, None)
        d.setdefault("outputs", [])
        d.setdefault("source", {"kind": "registry", "name": d.get("model")})
        return cls(**d, extra=extra)
