"""The one export pipeline: the config's rules, the artifact record, the target parser, the error kinds, and one
registry model and one multi-output user model through both backends with the same record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from shufflenet_edge.export.config import ExportConfig, Int8Config, TuneConfig
from shufflenet_edge.export.sidecar import SCHEMA, Sidecar
from shufflenet_edge.runtimes.targets import AdbOptions, parse_target

import shufflenet_edge as se
from shufflenet_edge.errors import EdgeError, InternalError, UsageError

sys.path.insert(0, str(Path(__file__).parent))
import user_models as um  # noqa: E402


@pytest.mark.parametrize(("kw", "says"), [
    ({"format": "onnx", "precision": "fp16"}, "--fp16 is for --target tflite"),
    ({"format": "onnx", "form": "cpu"}, "unknown ONNX form 'cpu'; valid: auto, reference, gather, transpose"),
    ({"format": "tflite", "form": "gather"}, "unknown TFLite form 'gather'; valid: auto, reference, cpu, delegate"),
    ({"format": "tflite", "dynamic_batch": True}, "--dynamic-batch is for --target onnx"),
    ({"format": "tflite", "io": "uint8"}, "--io is for --int8 models"),
    ({"format": "tflite", "batch": 2}, "use --form reference for --batch > 1"),
    ({"format": "tflite", "layout": "nchw"}, "the folded TFLite forms are NHWC"),
    ({"format": "onnx", "batch": 2, "form": "transpose"}, "use --form gather"),
    ({"format": "onnx", "keep_candidates": "d"}, "--keep-candidates and --tune-delegate are for --target tflite"),
    ({"format": "onnx", "layout": "nhwc"}, "--io and --layout are for --target tflite"),
    ({"format": "tflite", "int8": Int8Config(method="minmax")}, "only apply with --int8"),
    ({"format": "tflite", "form": "delegate", "tune": TuneConfig(target="ssh://pi@board")}, "--tune-on chooses"),
    ({"format": "tflite", "precision": "int4"}, "precision must be one of fp32, fp16, int8"),
])
def test_config_rules_are_checked_once_with_the_valid_choices(kw, says):  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=None) as e:
        ExportConfig(**kw)
    assert says in str(e.value)


def test_config_defaults_and_shortcuts() -> None:
    c = ExportConfig.from_options("tflite", int8=True, calib_method="minmax", int8_weights="per-tensor", threads=2)
    assert c.precision == "int8" and c.int8 == Int8Config(method="minmax", per_channel=False)
    assert c.tflite_io == "int8" and c.tflite_layout == "nhwc" and c.tune.threads == 2
    assert ExportConfig().tflite_io == "float" and ExportConfig(precision="int8").int8 == Int8Config()
    with pytest.raises(UsageError, match="--tune-delegate gpu times the candidates on a phone"):
        TuneConfig(prefer="gpu")
    with pytest.raises(UsageError, match="--calib-method must be one of minmax, histogram, percentile"):
        Int8Config(method="kl")
    with pytest.raises(TypeError, match="unknown export option"):
        ExportConfig.from_options("onnx", colour="blue")
    assert ExportConfig(format="onnx").default_out("m") == Path("out/m_fp32.onnx")
    assert ExportConfig(format="onnx").default_out("m", (64, 64)) == Path("out/m_64_fp32.onnx")


def test_one_target_parser() -> None:
    assert parse_target("local").kind == "local"
    t = parse_target("ssh://pi@raspberrypi.local:2222")
    assert t.kind == "ssh" and t.ssh_target().port == 2222
    t = parse_target("adb:SER1", AdbOptions(cpu_mask="f0"))
    assert t.kind == "adb" and t.serial == "SER1" and t.options.as_runner_options()["cpu_mask"] == "f0"
    for bad, says in (("ftp://x", "unknown target 'ftp://x'"), ("adb:", "write adb or adb:SERIAL"),
                      ("adb:-x", "must not start with '-'"), ("ssh://pi@host:99999", "port must be a number")):
        with pytest.raises(UsageError, match=None) as e:
            parse_target(bad)
        assert says in str(e.value)


def test_internal_error_is_ours_not_the_users() -> None:
    e = InternalError("graph passes changed int8 outputs by up to 3 steps")
    assert not isinstance(e, EdgeError)
    assert "This is a bug in shufflenet-edge, not in your model or command" in str(e) and "report" in str(e)


def test_api_entry_points_are_plain_functions() -> None:
    import types

    import shufflenet_edge.export.onnx_export  # noqa: F401  (a submodule import must not replace the function)
    from shufflenet_edge.parity import run_parity  # noqa: F401

    assert isinstance(se.export, types.FunctionType) and isinstance(se.parity, types.FunctionType)
    for name in ("shufflenet_edge.parity", "shufflenet_edge.export"):  # the modules stay plain modules
        assert type(sys.modules[name]) is types.ModuleType and not callable(sys.modules[name])


def test_user_module_name_is_the_same_in_every_process(tmp_path: Path) -> None:
    from shufflenet_edge.api import _user_module_name

    f = tmp_path / "m.py"
    f.write_text("")
    code = "import sys; from pathlib import Path; from shufflenet_edge.api import _user_module_name as n; print(n(Path(sys.argv[1])))"
    names = {subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, check=True).stdout.strip()
             for _ in range(2)}
    assert names == {_user_module_name(f)}


def test_old_sidecars_read_as_the_schema() -> None:
    old_onnx = {"format": "onnx", "path": "m.onnx", "model": "m", "precision": "int8", "form": "gather",
                "input": {"shape": [1, 3, 64, 64]}, "output": {"name": "logits"}, "preprocess": None,
                "float_check": {"max_abs_error_vs_torch": 1e-6, "tolerance": 1e-4, "per_output": []},
                "int8_loss": {"artifact_vs_float": {"psnr_db": 40.0}}, "guidelines_key": "k"}
    s = Sidecar.from_dict(old_onnx)
    d = s.to_dict()
    assert s.schema == SCHEMA and d["checks"]["int8_loss"]["artifact_vs_float"]["psnr_db"] == 40.0
    assert d["checks"]["vs_torch_max_abs_error"] == 1e-6 and "float_check" not in d and "int8_loss" not in d
    assert d["outputs"] == [{"name": "logits"}] and d["output"] == {"name": "logits"} and d["guidelines_key"] == "k"
    assert d["source"] == {"kind": "registry", "name": "m"}
    assert Sidecar.from_dict(d).to_dict() == d  # a v2 record reads back unchanged


def test_factory_returning_none_says_so(tmp_path: Path) -> None:
    from shufflenet_edge.api import load_model_file

    f = tmp_path / "mm.py"
    f.write_text("import torch\nclass M(torch.nn.Conv2d):\n    def train(self, mode=True):\n        super().train(mode)\n"
                 "def make():\n    return M(3, 3, 1).eval()\n")
    with pytest.raises(EdgeError, match="the factory returned None"):
        load_model_file(f"{f}:make")


def test_out_suffix_that_does_not_match_the_target_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "x.tflite"
    with pytest.raises(UsageError, match="does not end in .onnx"):
        se.export("shufflenet_v2_x0_5", out, target="onnx", input_size=64, show_progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("pipeline")
    user, shape = um.nanodet_backbone()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    made = {}
    for fmt, form in (("onnx", "gather"), ("tflite", "delegate")):
        made[f"registry_{fmt}"] = se.export("shufflenet_v2_x0_5", d / f"reg.{fmt}", form=form, input_size=64,
                                            show_progress=False)
        made[f"user_{fmt}"] = se.export(user, d / f"user.{fmt}", form=form, example_input=x, show_progress=False)
    return {k: json.loads(Path(str(a.path) + ".json").read_text()) for k, a in made.items()}


def test_every_sidecar_has_the_same_keys_and_schema(both_formats) -> None:  # type: ignore[no-untyped-def]
    keys = {k: set(v) for k, v in both_formats.items()}
    first = next(iter(keys.values()))
    assert all(k == first for k in keys.values()), {k: sorted(v ^ first) for k, v in keys.items()}
    assert {v["schema"] for v in both_formats.values()} == {SCHEMA}
    for side in both_formats.values():
        assert side["checks"]["per_output"] or side["checks"]["vs_torch_max_abs_error"] is not None
    assert len(both_formats["user_onnx"]["outputs"]) == len(both_formats["user_tflite"]["outputs"]) == 3
    assert both_formats["user_tflite"]["source"]["kind"] == "python"


def test_an_explicit_batch_resizes_a_given_example() -> None:
    """--batch 2 with a --model-file factory's (or the API's) batch-1 example exports at batch 2: it was exported at
    the example's batch 1 without a word. Without --batch the example's own batch stands."""
    from shufflenet_edge.export.pipeline import prepare

    m = torch.nn.Conv2d(3, 4, 3).eval()
    x = torch.randn(1, 3, 8, 8)
    two = prepare(m, ExportConfig(format="tflite", batch=2, form="reference"), example_input=x).example[0]
    assert two.shape == (2, 3, 8, 8) and torch.equal(two[1], x[0])
    assert prepare(m, ExportConfig(format="tflite"), example_input=torch.randn(3, 3, 8, 8)).example[0].shape[0] == 3
