"""--form auto converts a second candidate (a ShuffleNetV2's planned channel order) in a child process beside the
folded one (export/candidate_worker.py): the child's flatbuffer is the one this process would have made, its
simulation's outputs on the probe inputs are the ones this process would compute, and what cannot go to a child
falls back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from shufflenet_edge.export.candidate_worker import start_conversion
from shufflenet_edge.export.tflite_export import _nhwc, convert
from shufflenet_edge.export.tflite_quantize import pt2e_quantize
from shufflenet_edge.export.verify import torch_outputs
from torch import nn

from shufflenet_edge.models import build_model
from shufflenet_edge.models.common import randomize_batchnorm


def test_child_conversion_is_byte_identical_int8():
    m = randomize_batchnorm(build_model("shufflenet_v2_x0_5")).eval()
    x = torch.randn(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    calib = np.random.default_rng(0).standard_normal((4, 64, 64, 3)).astype(np.float32)
    q = {"calib_method": "histogram", "per_channel": True, "keep_float": []}
    if len(os.sched_getaffinity(0)) < 2 or os.environ.get("SHUFFLENET_EDGE_SERIAL_CANDIDATES"):
        pytest.skip("one CPU (or SHUFFLENET_EDGE_SERIAL_CANDIDATES set): the exporter converts in-process here")
    probe = np.random.default_rng(1).standard_normal((3, 64, 64, 3)).astype(np.float32)
    job = start_conversion(m, None, "nhwc", x, calib, q, {"chk": probe})
    assert job is not None, "a 2-CPU machine with a picklable registry model should use the child"
    try:
        sim, quantizer = pt2e_quantize(_nhwc(m, None), x, calib, **q)
        here = convert(sim, x, quantizer)
        there = job.result()
        assert there is not None, job.error
        assert there == here
        (got,), (want,) = job.sim_outputs["chk"], torch_outputs(sim, probe)
        assert np.array_equal(got, want)
    finally:
        job.cancel()


class _Unpicklable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = lambda t: t.relu()  # a lambda attribute: torch.save cannot pickle it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def test_unpicklable_model_falls_back_to_this_process():
    assert start_conversion(_Unpicklable().eval(), None, "nhwc", torch.randn(1, 8, 8, 3), None, None) is None


def test_serial_switch(monkeypatch):
    monkeypatch.setenv("SHUFFLENET_EDGE_SERIAL_CANDIDATES", "1")
    m = build_model("shufflenet_v2_x0_5").eval()
    assert start_conversion(m, None, "nhwc", torch.randn(1, 64, 64, 3), None, None) is None
