"""`shufflenet-edge guidelines`: the paper's G1-G4 networks hold its FLOPs constraint, the verdict rule,
and a small real run (export, interleaved timing, report files) through the command."""

from __future__ import annotations

import json
import math

import pytest

from shufflenet_edge.guidelines import networks as nw
from shufflenet_edge.guidelines.report import CONTRADICTS, FLAT, HOLDS, PARTLY, normalize, verdict


def _configs():
    for setup in nw.SETUPS:
        for table in nw.TABLES:
            for merge in (nw.G3_MERGES if table == "G3" else ("concat",)):
                for width in nw.WIDTHS:
                    yield setup, table, merge, width


@pytest.mark.parametrize("setup,table,merge,width", list(_configs()))
def test_each_tables_rows_hold_the_papers_flops_constraint(setup, table, merge, width):
    specs = nw.table_specs(table, setup, (width,), merge)
    assert [s.row for s in specs] == list(range(len(nw.PAPER[table].rows)))
    madds = [s.madds for s in specs]
    # the paper's constraint: every network of one table has the same FLOPs; we allow 3% between rows
    assert max(madds) / min(madds) - 1 <= 0.03, (table, setup, width, [s.describe() for s in specs], madds)


@pytest.mark.parametrize("table", nw.TABLES)
def test_formula_multiply_adds_match_torchs_counter(table):
    """The networks as built (not the formulas) are what the constraint is about: count them with torch."""
    for merge in (nw.G3_MERGES if table == "G3" else ("concat",)):
        for s in nw.table_specs(table, "arm", nw.WIDTHS, merge):
            m = s.build(device="meta")
            assert nw.count_madds(m, s.input_shape) == s.madds, s.name
            assert sum(1 for _ in m.children()) == nw.BLOCKS


def test_channels_stay_near_the_papers_and_obey_groups():
    for setup in nw.SETUPS:
        for width in nw.WIDTHS:
            f = nw.WIDTH_FACTOR[width]
            for table in ("G1", "G2"):
                for s in nw.table_specs(table, setup, (width,)):
                    paper = [v * f for v in nw.PAPER[table].channels[setup][s.row]]
                    for ours, theirs in zip(s.channels, paper, strict=True):
                        assert abs(ours - theirs) / theirs <= 0.06, (s.name, s.channels, paper)
                    if table == "G2":
                        assert s.channels[0] % (1, 2, 4, 8)[s.row] == 0
            g4 = nw.table_specs("G4", setup, (width,))
            assert {s.channels for s in g4} == {(32 * f,)}
    # where the paper's own numbers already hold the constraint they are kept exactly
    for setup, width in (("arm", "x2"), ("gpu", "x1")):
        assert [s.channels[0] for s in nw.table_specs("G2", setup, (width,))] == [128, 180, 256, 360]
    assert [s.channels for s in nw.table_specs("G1", "gpu", ("x1",))][:3] == [(128, 128), (90, 180), (52, 312)]
    # Table 1's ratios stay near the nominal ones
    for s in nw.table_specs("G1", "arm", ("x4",)):
        ratio = s.channels[1] / s.channels[0]
        assert math.isclose(ratio, (1, 2, 6, 12)[s.row], rel_tol=0.06), (s.name, s.channels)


def test_fused_network_computes_the_same_as_the_one_with_batchnorm():
    import torch

    s = nw.table_specs("G4", "arm", ("x1",))[0]
    x = torch.randn(*s.input_shape)
    with torch.no_grad():
        a, b = s.build()(x), s.build(fuse_bn=True)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in s.build(fuse_bn=True).modules())
    assert float((a - b).abs().max()) <= 1e-4 * float(a.abs().max())


def test_verdict_rule_on_the_papers_columns_and_synthetic_ones():
    arm = {t: [[r[i] for r in nw.PAPER[t].speed["arm"]] for i in range(3)] for t in nw.TABLES}
    assert verdict(normalize(arm["G1"][0]), "G1", 0.03) == HOLDS
    # Table 3, ARM c=128: the series blocks are exactly as fast as 1-fragment; only parallel ones are slower
    assert verdict(normalize(arm["G3"][1]), "G3", 0.03) == PARTLY
    assert verdict(normalize(arm["G4"][0]), "G4", 0.03) == HOLDS
    assert verdict([1.0, 1.05, 0.9, 0.8], "G2", 0.03) == CONTRADICTS
    assert verdict([1.0, 0.99, 1.01, 0.98], "G2", 0.03) == FLAT
    assert verdict([1.0, 1.0, 1.0, 0.9], "G4", 0.03) == CONTRADICTS  # stripping ops made it slower
    assert verdict([1.0, 1.0, 1.0, 1.2], "G4", 0.03) == HOLDS


@pytest.fixture(scope="session")
def guidelines_run(tmp_path_factory):
    """One real run: G4 at x1 and ShuffleNet V2 0.5x on onnxruntime fp32, through the CLI."""
    from shufflenet_edge.cli import main

    d = tmp_path_factory.mktemp("guidelines")
    out = d / "g.json"
    argv = ["guidelines", "--only", "G4,zoo", "--models", "shufflenet_v2_x0_5", "--width", "x1", "--rounds", "2",
            "--round-ms", "10", "--jobs", "1", "--cache", str(d / "cache"), "--json", str(out), "--quiet"]
    assert main(argv) == 0
    return d, out, argv


def test_command_writes_tables_verdicts_zoo_and_files(guidelines_run):
    d, out, _ = guidelines_run
    doc = json.loads(out.read_text())
    m = doc["meta"]
    assert m["runtime"] == "onnxruntime" and m["precision"] == "fp32" and m["threads"] == 1
    assert m["environment"]["cpu_model"] and m["wall_s"]["total"] > 0
    g4 = doc["tables"]["G4"]
    assert [r["label"] for r in g4["rows"]] == list(nw.PAPER["G4"].rows)
    cells = [r["widths"]["x1"] for r in g4["rows"]]
    assert all(c["median_ms"] > 0 and c["normalized"] is not None for c in cells)
    assert cells[0]["normalized"] == 1.0 and cells[0]["paper_arm_normalized"] == 1.0
    assert math.isclose(cells[3]["paper_arm_normalized"], 66.3 / 56.7, rel_tol=1e-3)
    assert g4["verdict"]["ours"]["per_width"]["x1"] in (HOLDS, PARTLY, FLAT, CONTRADICTS)
    assert g4["verdict"]["paper_arm"]["per_width"]["x1"] == HOLDS
    zoo = doc["zoo"]["rows"]
    assert [r["model"] for r in zoo] == ["shufflenet_v2_x0_5"]
    assert zoo[0]["median_ms"] > 0 and 35e6 < zoo[0]["madds"] < 45e6 and zoo[0]["form"] == "gather"
    md = (d / "g.md").read_text()
    assert "Table 4" in md and "shufflenet_v2_x0_5" in md and "Verdict" in md
    png = (d / "g.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # every artifact has its sidecar, recording what the network is
    for name, path in doc["artifacts"].items():
        side = json.loads(open(path + ".json").read())
        assert side["format"] == "onnx" and side["precision"] == "fp32"
        if name.startswith("g4_"):
            assert side["guidelines"]["table"] == "G4" and side["input"]["shape"] == [1, 32, 56, 56]


def test_second_run_reuses_the_cached_artifacts(guidelines_run, capsys):
    from shufflenet_edge.cli import main

    d, _, argv = guidelines_run
    out = d / "again.json"
    argv = [a if not a.endswith("g.json") else str(out) for a in argv] + ["--no-plot"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["artifacts_built"] == 0 and doc["meta"]["artifacts_cached"] == 5
    assert "Table 4" in capsys.readouterr().out


def test_litert_int8_network_builds_and_times(tmp_path):
    """The TFLite int8 path (PT2E through our quantizer, litert-torch) on one guideline network."""
    from shufflenet_edge.guidelines.run import build_task, micro_task, time_interleaved, tool_versions

    versions = tool_versions()
    spec = nw.table_specs("G2", "arm", ("x1",))[3]  # g=8 group convolutions
    task = micro_task(spec, "litert", "int8", tmp_path, False, versions)
    res = build_task(task, versions)
    side = res["sidecar"]
    assert side["format"] == "tflite" and side["precision"] == "int8" and side["input"]["dtype"] == "int8"
    assert side["input"]["shape"] == [1, 56, 56, spec.channels[0]] == side["output"]["shape"]
    from pathlib import Path

    from shufflenet_edge.export.inspect import inspect_tflite

    ops = inspect_tflite(Path(task.path), analyze_gpu=False)["op_histogram"]
    assert ops == {"CONV_2D": 10}, ops  # 10 int8 group convolutions, no layout transposes, no requantize
    t = time_interleaved([(spec.name, "g", task.path)], "litert", 1, rounds=1, round_ms=5)
    assert t[spec.name]["median_ms"] > 0 and t[spec.name]["runs_per_round"] >= 2


def test_bad_choices_are_one_line_usage_errors(capsys):
    from shufflenet_edge.cli import main

    for argv in (["guidelines", "--only", "G5"], ["guidelines", "--width", "x3"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown part 'G5'" in err and "unknown width 'x3'" in err
    assert main(["guidelines", "--target", "adb", "--quiet"]) == 2
    assert "unknown target" in capsys.readouterr().err
