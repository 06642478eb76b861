"""Generated ShuffleNet-family models (tests/model_gen.py) on every path: a seeded sample on every change (the full
run, 300 cases, is benchmarks/fuzz_models.py). No internal error, no wrong number; every refusal is the converter's
own, in one line. A failing case prints its seed: `python benchmarks/fuzz_models.py --seeds SEED` reproduces it.

Seeds the benchmark found failing are regression tests of their own at the end of this file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import generated_cases  # noqa: E402
import model_gen  # noqa: E402

FOLD_SEEDS = range(20)  # the fold in PyTorch: seconds each
EXPORT_SEEDS = (1, 4, 7)  # ONNX and TFLite fp32 with defaults: ~40 s each here
INT8_SEEDS = (1,)  # TFLite int8 with defaults


def _ok(rec: dict[str, Any]) -> None:
    for r in rec["results"]:
        where = f"{rec['summary']}, path {r['path']}"
        assert r["outcome"] in ("exported", "refused"), f"{where}: {r['outcome']}: {r['detail']}"
        if r["outcome"] == "refused":  # only the converter's refusal of the module as written
            assert "could not" in r["detail"] and "module as written" in r["detail"], f"{where}: {r['detail']}"


def test_the_seed_is_the_whole_model():
    """Same seed, same spec and same weights; different seeds differ."""
    a, b = model_gen.draw(123), model_gen.draw(123)
    assert a == b and model_gen.spec_json(a) == model_gen.spec_json(b)
    ma, shape = model_gen.build(a)
    mb, _ = model_gen.build(b)
    for (ka, va), (kb, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert model_gen.draw(124) != a
    assert shape == (1, 3, *a.input_hw)


def test_the_generator_covers_the_space():
    """Over the seeds the benchmark runs, every unit kind, shuffle and split spelling, activation, head and tap
    occurs, and so do odd channel counts, non-square inputs, SE blocks and rank 2-5 outputs."""
    specs = [model_gen.draw(s) for s in range(300)]
    units = [u for s in specs for u in s.units]
    assert {u.kind for u in units} == {"v1", "v2", "v2_evenodd"}
    assert {u.shuffle for u in units if u.kind != "v2_evenodd"} == set(model_gen.SHUFFLES)
    assert {u.split for u in units if u.kind == "v2" and u.stride == 1} == set(model_gen.SPLITS)
    assert {u.split for u in units if u.kind == "v2_evenodd" and u.stride == 1} == {"strided", "reshape"}
    assert {u.act for u in units} == set(model_gen.ACTS)
    assert {u.groups for u in units if u.kind == "v1"} == {2, 3, 4, 8}
    assert {h for s in specs for h in s.heads} == set(model_gen.HEADS)
    assert {w for s in specs for _, w in s.taps} == set(model_gen.TAPS)
    assert any(u.cout % 2 or (u.cout // 4) % 2 for u in units if u.kind == "v1")  # odd channel counts
    assert any(s.stem % 2 for s in specs) and any(u.first_half * 2 != u.cin for u in units if u.kind == "v2" and u.stride == 1)
    assert any(s.input_hw[0] != s.input_hw[1] for s in specs) and any(u.se for u in units)
    ranks = set()
    for s in specs[:40]:
        m, shape = model_gen.build(s)
        with torch.no_grad():
            y = m(torch.zeros(shape))
        ranks |= {t.dim() for t in (y if isinstance(y, tuple) else (y,))}
    assert ranks == {2, 3, 4, 5}


@pytest.mark.parametrize("seed", FOLD_SEEDS)
def test_fold_of_generated_model(seed: int, tmp_path: Path):
    _ok(generated_cases.run_case(seed, tmp_path, ("fold",)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", EXPORT_SEEDS)
def test_float_exports_of_generated_model(seed: int, tmp_path: Path):
    rec = generated_cases.run_case(seed, tmp_path, ("onnx", "tflite"))
    _ok(rec)
    for r in rec["results"]:
        if r["outcome"] == "exported":
            assert r["metrics"]["parity_passed"] or "converter's own distance" in r["detail"], (rec["summary"], r)


@pytest.mark.slow
@pytest.mark.parametrize("seed", INT8_SEEDS)
def test_int8_export_of_generated_model(seed: int, tmp_path: Path):
    rec = generated_cases.run_case(seed, tmp_path, ("tflite_int8",))
    _ok(rec)
    assert rec["results"][0]["outcome"] == "exported", rec


# Found by benchmarks/fuzz_models.py (2026-12-07). Seed 84 (megvii-style even/odd units, two taps, three heads):
# litert-torch's int8 conversion, folded and as written alike, holds a GATHER_ND that LiteRT refuses to run (indices
# out of bounds); the check of the first candidate raised it as a crash. Now a candidate that does not run is left
# out like one that runs wrong, and when the converter's own graph does not run either, one line and no file.
# Seeds 88 and 128: litert-torch's int8 conversion failed on the folded graph (a KeyError on a conv node; a concat
# of mismatched sizes); the artifact ships from the graph as written, the warning naming the bug (still open: why the
# folded int8 graph trips the converter there).
@pytest.mark.slow
def test_int8_seed_84_a_graph_litert_cannot_run_is_a_refusal(tmp_path: Path):
    rec = generated_cases.run_case(84, tmp_path, ("tflite_int8",))
    _ok(rec)
    r = rec["results"][0]
    assert r["outcome"] == "refused" and "LiteRT could not run" in r["detail"], rec
    assert not list(tmp_path.glob("*.tflite")), "nothing written"


@pytest.mark.slow
@pytest.mark.parametrize("seed", (88, 128))
def test_int8_a_folded_graph_the_converter_refuses_falls_back(seed: int, tmp_path: Path):
    rec = generated_cases.run_case(seed, tmp_path, ("tflite_int8",))
    _ok(rec)
    r = rec["results"][0]
    assert r["outcome"] == "exported" and r["fallback"] and "refused the folded graph" in r["fallback"], rec


# Seed 260 (hard-swish units, fancy-index shuffles, an SE block): litert-torch's int8 conversion of the folded graph
# rounded far from its own quantization simulation (16% of values within 2 steps, up to 19 steps; 23 dB to float)
# where its conversion of the module as written did not (99.7%): the folded candidate shipped, with a warning only.
# Now such a candidate is left out and the graph as written ships, said in the fallback warning.
@pytest.mark.slow
def test_int8_seed_260_a_folded_graph_far_from_its_simulation_falls_back(tmp_path: Path):
    rec = generated_cases.run_case(260, tmp_path, ("tflite_int8",))
    _ok(rec)
    r = rec["results"][0]
    assert r["outcome"] == "exported" and r["fallback"] and "far from its quantization simulation" in r["fallback"], rec
    assert r["form"] == "reference" and r["metrics"]["within_2_steps_fraction"] >= 0.9, rec
