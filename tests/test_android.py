"""The Android demo: `android-assets`, and the app's plain-Java core against our Python preprocessing.

The Java core (android_demo/core) is compiled here with javac (`--release 8`, so it uses no Java API newer
than Android's) and its JUnit 4 tests run with Debian's junit4 against golden vectors that
`shufflenet_edge.golden` writes from `shufflenet_edge.data.Preprocess`. The app itself needs the Android
SDK and is not built here (android_demo/README.md says what is and is not verified).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shufflenet_edge.cli import main
from shufflenet_edge.data import Preprocess

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android_demo"
CORE_MAIN = DEMO / "core" / "src" / "main" / "java"
CORE_TEST = DEMO / "core" / "src" / "test" / "java"
COMMITTED_GOLDEN = DEMO / "core" / "src" / "test" / "resources" / "golden"
APP_JAVA = DEMO / "app" / "src" / "main" / "java"
JUNIT = Path("/usr/share/java/junit4.jar")
HAMCREST = Path("/usr/share/java/hamcrest-core.jar")


def _java_missing() -> str | None:
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH (install a JDK, e.g. Debian's openjdk-17-jdk-headless)"
    for jar in (JUNIT, HAMCREST):
        if not jar.is_file():
            return f"{jar} missing (apt-get install -y junit4)"
    return None


needs_java = pytest.mark.skipif(_java_missing() is not None, reason=str(_java_missing()))


# ------------------------------------------------------------------------------------------- fixtures


def toy_int8_tflite(size: int = 224, in_q: tuple[float, int] = (0.018658, -14),
                    out_q: tuple[float, int] = (0.0125, 3)) -> bytes:
    """A real int8 .tflite: input [1,size,size,3] int8 -> MEAN over H, W -> [1,3] int8 ("classes" R, G, B).

    Built with LiteRT's flatbuffer schema so the test needs no converter; the interpreter runs it.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT()
    m.version = 3
    m.description = b"shufflenet-edge test toy: per-channel mean"
    oc = s.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = s.BuiltinOperator.MEAN
    oc.version = 2
    m.operatorCodes = [oc]

    def buf(data: bytes | None = None) -> object:
        b = s.BufferT()
        if data is not None:
            b.data = np.frombuffer(data, np.uint8)
        return b

    def quant(scale: float, zp: int) -> object:
        p = s.QuantizationParametersT()
        p.scale, p.zeroPoint = [scale], [zp]
        return p

    def tensor(name: bytes, shape: list[int], typ: int, b: int, q: object = None) -> object:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, shape, typ, b, q
        return t

    m.buffers = [buf(), buf(), buf(np.array([1, 2], np.int32).tobytes()), buf()]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = s.BuiltinOptions.ReducerOptions
    op.builtinOptions = s.ReducerOptionsT()
    op.builtinOptions.keepDims = False
    sg = s.SubGraphT()
    sg.tensors = [tensor(b"input", [1, size, size, 3], s.TensorType.INT8, 1, quant(*in_q)),
                  tensor(b"axes", [2], s.TensorType.INT32, 2),
                  tensor(b"logits", [1, 3], s.TensorType.INT8, 3, quant(*out_q))]
    sg.inputs, sg.outputs, sg.operators, sg.name = [0], [2], [op], b"main"
    m.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write_toy_artifact(folder: Path, *, sidecar: dict | None = None, name: str = "toy_int8.tflite") -> Path:
    """The toy model and a sidecar in the exporters' format (export/common.py write_sidecar: `<artifact>.json`)."""
    folder.mkdir(parents=True, exist_ok=True)
    art = folder / name
    art.write_bytes(toy_int8_tflite())
    side = {"format": "tflite", "model": "toy_mean", "precision": "int8", "form": "reference", "num_classes": 3,
            "input": {"name": "input", "shape": [1, 224, 224, 3], "layout": "nhwc", "dtype": "int8", "quantization": None},
            "output": {"name": "logits", "shape": [1, 3], "dtype": "int8", "quantization": None},
            "preprocess": Preprocess().to_dict(), "labels": ["red", "green", "blue"]}
    if sidecar is not None:
        side.update(sidecar)
    (folder / (name + ".json")).write_text(json.dumps(side, indent=2))
    return art


def app_copy(tmp: Path) -> Path:
    """A copy of android_demo without build outputs or generated assets."""
    dst = tmp / "android_demo"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("build", ".gradle", "golden", "assets"))
    return dst


@pytest.fixture(scope="module")
def core_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """javac the core (--release 8: no Java API newer than Android's) and its tests; returns the classes root."""
    reason = _java_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("javac")
    (out / "main").mkdir()
    (out / "test").mkdir()
    main_src = sorted(str(p) for p in CORE_MAIN.rglob("*.java"))
    test_src = sorted(str(p) for p in CORE_TEST.rglob("*.java"))
    r = subprocess.run(["javac", "--release", "8", "-Xlint:all", "-Xlint:-options", "-Werror", "-encoding", "UTF-8",
                        "-d", str(out / "main"), *main_src], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"javac (core) failed:\n{r.stdout}{r.stderr}"
    r = subprocess.run(["javac", "-encoding", "UTF-8", "-d", str(out / "test"), "-cp", f"{out / 'main'}:{JUNIT}",
                        *test_src], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"javac (tests) failed:\n{r.stdout}{r.stderr}"
    return out


def run_junit(classes: Path, *test_classes: str, props: dict[str, str] | None = None,
              extra_cp: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    cp = [classes / "main", classes / "test", *(extra_cp or []), JUNIT, HAMCREST]
    argv = ["java", *(f"-D{k}={v}" for k, v in (props or {}).items()),
            "-cp", ":".join(str(p) for p in cp), "org.junit.runner.JUnitCore", *test_classes]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------------------------------------- tests


@needs_java
def test_android_assets_then_java_core_passes_on_golden_vectors(tmp_path: Path, core_classes: Path, capsys) -> None:
    art = write_toy_artifact(tmp_path / "out")
    app = app_copy(tmp_path)
    assert main(["android-assets", str(art), "--app", str(app)]) == 0
    assert "model_config.json" in capsys.readouterr().out
    assets = app / "app" / "src" / "main" / "assets"
    cfg = json.loads((assets / "model_config.json").read_text())
    # Quantization read from the model file (the sidecar had none), preprocessing from the sidecar.
    assert cfg["input"]["dtype"] == "int8" and cfg["input"]["zero_point"] == -14
    assert abs(cfg["input"]["scale"] - 0.018658) < 1e-7
    assert cfg["output"] == {"shape": [1, 3], "dtype": "int8", "scale": pytest.approx(0.0125), "zero_point": 3}
    assert cfg["preprocess"]["input_size"] == 224 and cfg["preprocess"]["resize_size"] == 256
    assert (assets / "labels.txt").read_text().splitlines() == ["red", "green", "blue"]
    assert (assets / "model.tflite").read_bytes() == art.read_bytes()
    assert not [p for p in assets.iterdir() if p.name.startswith(".")], "temporary files left in the assets"

    from shufflenet_edge.golden import write_golden

    golden = tmp_path / "golden"
    manifest = json.loads(write_golden(golden, cfg).read_text())
    assert len(manifest["images"]) >= 5
    assert len({(i["width"] / i["height"]) for i in manifest["images"]}) >= 5, "aspect ratios must differ"
    r = run_junit(core_classes, "dev.shufflenetedge.core.CoreTest", "dev.shufflenetedge.core.GoldenTest",
                  props={"golden.dir": str(golden), "assets.dir": str(assets),
                         "bench.json.out": str(tmp_path / "bench.json")})
    assert r.returncode == 0, f"JUnit failed:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}"
    assert re.search(r"OK \((\d+) tests\)", r.stdout), r.stdout[-2000:]
    # The benchmark activity's JSON, as the Java core writes it, is what the adb target reads.
    from shufflenet_edge.runtimes.adb import record_fields_from_app_json

    fields = record_fields_from_app_json(json.loads((tmp_path / "bench.json").read_text()))
    assert fields["status"] == "ok" and fields["latency_ms"]["median"] == pytest.approx(3.0)
    assert fields["init_ms"] == pytest.approx(12.5) and fields["warmup"] == 2


@needs_java
def test_committed_golden_set_passes_and_is_current(tmp_path: Path, core_classes: Path) -> None:
    """The small set the Gradle build tests (`./gradlew :core:test`) must be what our Python writes today."""
    from shufflenet_edge.golden import main as golden_main

    fresh = tmp_path / "golden"
    assert golden_main(["--small", "--out", str(fresh)]) == 0
    committed = sorted(p.name for p in COMMITTED_GOLDEN.iterdir())
    assert committed == sorted(p.name for p in fresh.iterdir()), \
        "committed golden files differ in names: python -m shufflenet_edge.golden --small --out " + str(COMMITTED_GOLDEN.relative_to(ROOT))
    for name in committed:
        a, b = (COMMITTED_GOLDEN / name).read_bytes(), (fresh / name).read_bytes()
        if name == "manifest.json":
            ja, jb = json.loads(a), json.loads(b)
            for k in ("pillow", "numpy"):
                ja.pop(k), jb.pop(k)
            assert ja == jb, "manifest.json is stale: regenerate with python -m shufflenet_edge.golden --small"
        else:
            assert a == b, f"{name} is stale: regenerate with python -m shufflenet_edge.golden --small --out ..."
    # And the Java tests pass on the committed set found on the classpath, as under Gradle.
    r = run_junit(core_classes, "dev.shufflenetedge.core.GoldenTest", extra_cp=[COMMITTED_GOLDEN.parent])
    assert r.returncode == 0, f"JUnit failed on the committed set:\n{r.stdout[-4000:]}"
    assert "OK (" in r.stdout


def test_committed_golden_is_small() -> None:
    total = sum(p.stat().st_size for p in COMMITTED_GOLDEN.iterdir())
    assert total < 1_000_000, f"committed golden vectors are {total} bytes; keep them under 1 MB"


def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("case", ["no_sidecar", "onnx", "no_preprocess", "scale_mismatch", "labels_count", "not_app"])
def test_android_assets_errors_are_one_line_and_leave_nothing(tmp_path: Path, capsys, case: str) -> None:
    out = tmp_path / "out"
    app = tmp_path / "app_root"
    (app / "app").mkdir(parents=True)
    art = write_toy_artifact(out)
    expect = ""
    if case == "no_sidecar":
        (out / (art.name + ".json")).unlink()
        expect = "no sidecar JSON"
    elif case == "onnx":
        art = out / "m.onnx"
        art.write_bytes(b"not really")
        expect = "runs TFLite models"
    elif case == "no_preprocess":
        side = json.loads((out / (art.name + ".json")).read_text())
        del side["preprocess"]
        (out / (art.name + ".json")).write_text(json.dumps(side))
        expect = "no 'preprocess'"
    elif case == "scale_mismatch":
        art = write_toy_artifact(out, sidecar={"input": {"shape": [1, 224, 224, 3], "dtype": "int8",
                                                         "quantization": [0.02, -14]}})
        expect = "input scale: the sidecar says 0.02"
    elif case == "labels_count":
        art = write_toy_artifact(out, sidecar={"labels": ["a", "b"]})
        expect = "2 names for a model with 3 classes"
    elif case == "not_app":
        shutil.rmtree(app / "app")
        expect = "is not the Android demo project"
    assert main(["android-assets", str(art), "--app", str(app)]) == 1
    err = _err(capsys)
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err, err
    assets = app / "app" / "src" / "main" / "assets"
    assert not assets.exists() or not any(assets.iterdir()), "a failed android-assets left files behind"


def test_android_assets_labels_override_and_rerun(tmp_path: Path) -> None:
    from shufflenet_edge.commands.android import write_assets

    app = tmp_path / "app_root"
    (app / "app").mkdir(parents=True)
    art = write_toy_artifact(tmp_path / "out")
    labels = tmp_path / "names.txt"
    labels.write_text("R\nG\nB\n\n")
    cfg = write_assets(art, app, labels)
    assert (app / "app/src/main/assets/labels.txt").read_text() == "R\nG\nB\n"
    assert cfg["source_sha256"] and cfg["source_artifact"] == art.name
    # A second run replaces the files in place.
    cfg2 = write_assets(art, app, None)
    assert cfg2 == {**cfg} and (app / "app/src/main/assets/labels.txt").read_text() == "red\ngreen\nblue\n"


def test_core_uses_no_android_api_and_nothing_newer_than_android_24() -> None:
    """The core runs on the JVM here and on ART at minSdk 24: no android.* and no Java APIs ART lacks there."""
    banned = {
        r"^\s*import\s+android": "Android import in the plain-Java core",
        r"^\s*import\s+androidx": "AndroidX import in the plain-Java core",
        r"java\.nio\.file": "java.nio.file (Android API 26)",
        r"java\.time": "java.time (Android API 26)",
        r"String\.join\(": "String.join (Android API 26)",
        r"\b(List|Set|Map)\.of\(": "List/Set/Map.of (Android API 30)",
        r"java\.util\.stream": "streams (keep the core loop-based and allocation-light)",
        r"readAllBytes\(": "InputStream.readAllBytes (Android API 33)",
        r"\.repeat\(": "String.repeat (Android API 33)",
    }
    problems = []
    for f in CORE_MAIN.rglob("*.java"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for pat, why in banned.items():
                if re.search(pat, line):
                    problems.append(f"{f.relative_to(ROOT)}:{n}: {why}")
    assert not problems, "\n".join(problems)


def _declared_min_sdk() -> int:
    text = (DEMO / "app" / "build.gradle.kts").read_text()
    m = re.search(r"minSdk\s*=\s*(\d+)", text)
    assert m, "app/build.gradle.kts declares no minSdk"
    return int(m.group(1))


def test_every_android_api_the_app_uses_is_listed_with_its_level_at_or_below_min_sdk() -> None:
    """android_demo/README.md keeps a table `| API | added in |` of every android.* class and method the app
    calls; this test keeps it complete (every android.* import is listed) and keeps it at or below minSdk."""
    min_sdk = _declared_min_sdk()
    readme = (DEMO / "README.md").read_text()
    table = dict(re.findall(r"^\|\s*`(android\.[\w.#]+)`[^|]*\|\s*(\d+)\s*\|", readme, flags=re.M))
    assert table, "android_demo/README.md has no API-level table"
    imports = set()
    for f in APP_JAVA.rglob("*.java"):
        imports |= set(re.findall(r"^import\s+(android\.[\w.]+);", f.read_text(), flags=re.M))
    missing = sorted(i for i in imports if not any(k == i or k.startswith(i + "#") for k in table))
    assert not missing, f"android.* classes used by the app but not in the README's API table: {missing}"
    too_new = {k: v for k, v in table.items() if int(v) > min_sdk}
    assert not too_new, f"APIs newer than minSdk {min_sdk}: {too_new}"


def test_android_assets_reads_the_tflite_exporters_sidecar_format(tmp_path: Path) -> None:
    """export/tflite_export.py writes input/output as {name, dtype, shape, quantization: {scale, zero_point}}."""
    from shufflenet_edge.commands.android import write_assets

    app = tmp_path / "app_root"
    (app / "app").mkdir(parents=True)
    art = write_toy_artifact(tmp_path / "out", sidecar={
        "input": {"name": "input", "dtype": "int8", "shape": [1, 224, 224, 3], "layout": "nhwc",
                  "quantization": {"scale": 0.018658, "zero_point": -14}},
        "output": {"name": "logits", "dtype": "int8", "shape": [1, 3], "quantization": {"scale": 0.0125, "zero_point": 3}},
        "labels": None})
    cfg = write_assets(art, app)
    assert cfg["input"]["zero_point"] == -14 and cfg["output"]["zero_point"] == 3 and cfg["num_classes"] == 3
    assert (app / "app/src/main/assets/labels.txt").read_text().splitlines() == ["class_0", "class_1", "class_2"]


@needs_java
def test_java_tensor_io_reads_and_writes_what_numpy_does(tmp_path: Path, core_classes: Path) -> None:
    """The parity entry point's .npy I/O (android_demo/core Npy.java) against files numpy writes and reads."""
    import numpy as np

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "float_nhwc": rng.standard_normal((3, 8, 6, 3)).astype(np.float32),
        "int8_input": rng.integers(-128, 128, (2, 4, 4, 3), dtype=np.int8),
        "uint8_input": rng.integers(0, 256, (2, 5, 3), dtype=np.uint8),
        "int32_ids": np.arange(7, dtype=np.int32).reshape(7, 1),
        "logits_1d": rng.standard_normal((5,)).astype(np.float32),
        "special": np.array([[np.inf, -np.inf, -0.0, 1e-45]], dtype=np.float32),
    }
    for k, a in arrays.items():
        np.save(src / f"{k}.npy", a)
    r = run_junit(core_classes, "dev.shufflenetedge.core.NpyTest",
                  props={"npy.in.dir": str(src), "npy.out.dir": str(dst)})
    assert r.returncode == 0, f"JUnit failed:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    for k, a in arrays.items():
        back = np.load(dst / f"{k}.npy")
        assert back.dtype == a.dtype and back.shape == a.shape, k
        assert back.tobytes() == a.tobytes(), k  # bit-exact, including inf and -0.0
        rev = np.load(dst / f"{k}.reversed.npy")
        assert rev.tobytes() == a[::-1].tobytes(), k
    assert not list(dst.glob("*.partial")), "temporary files left behind"
