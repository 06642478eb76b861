"""What an export is asked to do: one frozen record, every cross-field rule checked once, here.

The CLI builds an `ExportConfig` from its flags and does no validation of its own; the Python API builds one from
keyword shortcuts (`ExportConfig.from_options`) or takes it whole. A rule that fails is a `UsageError` naming the
rule and the valid choices, raised before any conversion starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from collections.abc import Callable
from typing import Any

from shufflenet_edge.errors import UsageError

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
FORMS = {"onnx": ("auto", "reference", "gather", "transpose"),
         "tflite": ("auto", "reference", "cpu", "delegate", "blocks")}
CALIB_METHODS = ("minmax", "histogram", "percentile")
# The default activation-range method per format: PT2E's histogram observer for TFLite, onnxruntime's MinMax.
DEFAULT_CALIB_METHOD = {"tflite": "histogram", "onnx": "minmax"}
WEIGHT_GRANULARITIES = ("per-channel", "per-tensor")
IO_TYPES = ("float", "int8", "uint8")
LAYOUTS = ("nhwc", "nchw")
PREFERENCES = ("cpu", "gpu")
DEFAULT_SEARCH_TRIES = 12  # int8 budget search: simulated quantizations at most, refinement and pruning included


def _choice(what: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UsageError(f"{what} must be one of {', '.join(valid)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class AccuracyBudget:
    """The user's own accuracy measure as the int8 budget. `validate(predict)` returns a score, higher is better;
    `predict(x)` runs a float32 NCHW batch through the graph being judged (the float model, a simulated try of the
    search, the int8 artifact) and returns its outputs as numpy arrays, in the PyTorch model's order and layout.
    The int8 artifact may score at most `max_drop` below the float model."""

    validate: Callable[[Callable[[Any], list[Any]]], float]
    max_drop: float
    name: str = "validation score"

    def __post_init__(self) -> None:
        if not callable(self.validate):
            raise UsageError(f"AccuracyBudget.validate must be a function validate(predict) -> score, got "
                             f"{type(self.validate).__name__}")
        if not self.max_drop >= 0:
            raise UsageError(f"AccuracyBudget.max_drop must be 0 or more, got {self.max_drop}")


@dataclasses.dataclass(frozen=True)
class Int8Config:
    """Full-integer quantization: calibration, observers, weight scales, units kept float, and the gate the
    artifact must meet against the float model (a parity `Thresholds`, None = report only)."""

    calib: str | None = None  # image folder; None = the stated synthetic fallback
    method: str | None = None  # None = the format's default (DEFAULT_CALIB_METHOD)
    images: int | None = None  # how many calibration images; None = the calibration set's default
    per_channel: bool = True
    keep_float: tuple[str, ...] = ()
    gate: Any = None
    # When the artifact misses `gate`: simulated quantizations the search for the fewest float units may spend
    # (export/int8_search.py); 0 refuses at once, as without a search.
    search_tries: int = DEFAULT_SEARCH_TRIES
    # The images the artifact is judged on (parity's default for it afterwards): a folder with one sub-folder per
    # class, so the gate's max_accuracy_drop can be checked; `labels` maps the folder names to model classes.
    check_images: str | None = None
    labels: str | None = None
    budget: AccuracyBudget | None = None  # the user's validation function, judged with the gate

    def __post_init__(self) -> None:
        if self.labels is not None and self.check_images is None:
            raise UsageError("--labels maps the class sub-folders of --images; give --images too")
        if self.check_images is not None:
            _labelled_folder(self.check_images)
        if self.labels is not None:
            from shufflenet_edge.parity import read_label_file

            read_label_file(self.labels)  # a missing or empty file fails now, not after the conversion
        if self.gate is not None and self.gate.max_accuracy_drop is not None and self.check_images is None:
            raise UsageError("--max-accuracy-drop needs labelled images: --images DIR with one sub-folder per class")
        if self.budget is not None and not isinstance(self.budget, AccuracyBudget):
            raise UsageError(f"budget must be an AccuracyBudget(validate, max_drop), got {type(self.budget).__name__}")
        if self.method is not None:
            _choice("--calib-method", self.method, CALIB_METHODS)
        if self.search_tries < 0:
            raise UsageError(f"--search-tries must be 0 or more, got {self.search_tries}")
        if self.images is not None and self.images < 1:
            raise UsageError(f"--calib-images must be a positive integer, got {self.images}")
        if self.calib is not None:
            from shufflenet_edge.data import list_images

            list_images(self.calib)  # a missing or empty folder fails now, not after the conversion
        object.__setattr__(self, "keep_float", tuple(self.keep_float or ()))
        if self.gate is not None and not self.gate.any():
            object.__setattr__(self, "gate", None)

    @property
    def has_budget(self) -> bool:
        return self.gate is not None or self.budget is not None

    def method_for(self, fmt: str) -> str:
        return self.method or DEFAULT_CALIB_METHOD[fmt]

    @property
    def weights(self) -> str:
        return "per-channel" if self.per_channel else "per-tensor"


def _labelled_folder(folder: str) -> None:
    """A missing folder, or one without class sub-folders, fails now, not after the conversion."""
    from shufflenet_edge.data import list_images

    root = Path(folder)
    files = list_images(folder)
    if not any(f.parent != root for f in files):
        raise UsageError(f"--images {folder}: no class sub-folders (put each class's images in a sub-folder named "
                         "after it; --labels FILE maps the names to the model's classes)")


def _default_budget() -> float | None:
    import os

    raw = os.environ.get("SHUFFLENET_EDGE_TUNE_SECONDS")
    try:
        return float(raw) if raw else None  # None: export.timing.default_budget (half the conversions' time)
    except ValueError:
        raise UsageError(f"$SHUFFLENET_EDGE_TUNE_SECONDS must be a number of seconds, got {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """Where and how `--form auto` times its candidates. `target` is a target spec (local, ssh://user@host[:port],
    adb[:SERIAL]); `options` the target's typed options (runtimes.targets.SshOptions / AdbOptions)."""

    target: str = "local"
    threads: int = 1
    rounds: int | None = None  # None: locally until decided or the budget is spent; remote export.timing.TUNE_ROUNDS
    runs: int | None = None  # None = export.timing.TUNE_RUNS
    prefer: str = "cpu"  # what the artifact will run on: cpu (XNNPACK) or gpu (a GPU/NPU delegate)
    options: Any = None
    # local timing stops here even when a comparison is still undecided ($SHUFFLENET_EDGE_TUNE_SECONDS sets the default:
    # the test suite's exports take 3 s, which form wins is not what they check)
    budget_s: float | None = dataclasses.field(default_factory=lambda: _default_budget())

    def __post_init__(self) -> None:
        _choice("--tune-delegate", self.prefer, PREFERENCES)
        for name in ("threads", "rounds", "runs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"tuning {name} must be a positive integer, got {v}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise UsageError(f"--tune-seconds must be a positive number of seconds, got {self.budget_s}")
        from shufflenet_edge.runtimes.targets import parse_target

        kind = parse_target(self.target).kind  # a bad spec fails now, not after the conversion
        if self.prefer == "gpu" and kind != "adb":
            raise UsageError("--tune-delegate gpu times the candidates on a phone's GPU: use --tune-on adb[:SERIAL] "
                             "(elsewhere the timings would be CPU ones; without a phone, export --form delegate)")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """One export: the artifact's format, precision and graph form, its input, and the int8 and tuning choices.

    `io` and `layout` are TFLite's (None = their defaults: int8 I/O for int8 models, float otherwise; NHWC).
    `int8` is required for (and only allowed with) precision int8; `Int8Config()` takes every default."""

    format: str = "tflite"
    precision: str = "fp32"
    form: str = "auto"
    batch: int = 1
    dynamic_batch: bool = False
    input_size: int = 224
    layout: str | None = None
    io: str | None = None
    seed: int = 0
    keep_candidates: str | None = None
    int8: Int8Config | None = None
    tune: TuneConfig = dataclasses.field(default_factory=TuneConfig)
    progress: bool = True

    def __post_init__(self) -> None:
        _choice("target", self.format, FORMATS)
        _choice("precision", self.precision, PRECISIONS)
        forms = FORMS[self.format]
        if self.form not in forms:
            raise UsageError(f"unknown {self.format_name} form {self.form!r}; valid: {', '.join(forms)}")
        if self.batch < 1:
            raise UsageError(f"--batch must be a positive integer, got {self.batch}")
        if self.input_size < 32:
            raise UsageError(f"input size must be >= 32 (the networks downsample by 32), got {self.input_size}")
        if self.precision == "int8" and self.int8 is None:
            object.__setattr__(self, "int8", Int8Config())
        if self.precision != "int8" and self.int8 is not None and self.int8 != Int8Config():
            raise UsageError("--calib, --keep-float, --calib-method, --calib-images, --int8-weights, --images and the "
                             "budget options only apply with --int8")
        if self.precision != "int8":
            object.__setattr__(self, "int8", None)
        if self.tune.target != "local" and self.form != "auto":
            raise UsageError("--tune-on chooses among the candidates of --form auto; drop --form or --tune-on")
        (self._check_onnx if self.format == "onnx" else self._check_tflite)()

    @property
    def format_name(self) -> str:
        return "ONNX" if self.format == "onnx" else "TFLite"

    def _check_onnx(self) -> None:
        if self.precision == "fp16":
            raise UsageError("--fp16 is for --target tflite")
        if self.keep_candidates is not None or self.tune.prefer != "cpu":
            raise UsageError("--keep-candidates and --tune-delegate are for --target tflite")
        if self.io is not None or self.layout is not None:
            raise UsageError("--io and --layout are for --target tflite (ONNX input is float NCHW)")
        if (self.batch != 1 or self.dynamic_batch) and self.form == "transpose":
            raise UsageError("the transpose form is rank 4 only for batch 1; use --form gather for --batch > 1 or "
                             "--dynamic-batch")

    def _check_tflite(self) -> None:
        if self.dynamic_batch:
            raise UsageError("--dynamic-batch is for --target onnx (TFLite tensors are static)")
        if self.io is not None:
            _choice("--io", self.io, IO_TYPES)
            if self.precision != "int8" and self.io != "float":
                raise UsageError("--io is for --int8 models (float models have float I/O)")
        if self.layout is not None:
            _choice("--layout", self.layout, LAYOUTS)
        if self.batch != 1 and self.form != "reference":
            raise UsageError("the folded TFLite forms are built for batch 1; use --form reference for --batch > 1")
        if self.tflite_layout == "nchw" and self.form != "reference":
            raise UsageError("the folded TFLite forms are NHWC (what LiteRT and Android expect); use --layout nhwc "
                             "or --form reference")

    @property
    def tflite_layout(self) -> str:
        return self.layout or "nhwc"

    @property
    def tflite_io(self) -> str:
        return self.io or ("int8" if self.precision == "int8" else "float")

    def default_out(self, model: str, input_hw: tuple[int, int] | None = None) -> Path:
        """out/<model>_<precision>.<ext>; the input size joins the name when it is not the default 224, so a 64
        and a 224 export do not overwrite each other."""
        h, w = input_hw or (self.input_size, self.input_size)
        size = "" if (h, w) == (224, 224) else (f"_{h}" if h == w else f"_{h}x{w}")
        return Path("out") / f"{model}{size}_{self.precision}.{self.format}"

    @classmethod
    def from_options(cls, fmt: str, **kw: Any) -> ExportConfig:
        """The Python API's keyword shortcuts (the CLI's flag names) -> a config. Unknown names are a TypeError."""
        int8_kw = {k: kw.pop(k) for k in ("calib", "calib_method", "calib_images", "int8_weights", "keep_float", "gate",
                                          "search_tries", "images", "labels", "budget")
                   if k in kw}
        tune_kw = {k: kw.pop(k) for k in ("tune_on", "tune_options", "tune_rounds", "tune_runs", "tune_delegate",
                                          "tune_seconds", "threads") if k in kw}
        whole = kw.pop("int8", False)  # True, or the int8 choices whole: int8=Int8Config(budget=...)
        if whole:
            kw.setdefault("precision", "int8")
        if "show_progress" in kw:
            kw["progress"] = bool(kw.pop("show_progress"))
        unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown export option(s): {', '.join(unknown)}")
        int8 = None
        given = [k for k, v in int8_kw.items() if v not in (None, [], ()) and not (k == "gate" and not v.any())]
        if given and kw.get("precision") != "int8":
            flags = ", ".join("--" + k.replace("_", "-") if k != "gate" else "the gate options" for k in given)
            raise UsageError(f"{flags} only apply with --int8")
        if isinstance(whole, Int8Config):
            if given:
                raise UsageError(f"int8=Int8Config(...) holds the int8 choices; pass {', '.join(given)} inside it")
            int8 = whole
        elif kw.get("precision") == "int8":
            weights = int8_kw.get("int8_weights")
            if weights is not None:
                _choice("--int8-weights", weights, WEIGHT_GRANULARITIES)
            int8 = Int8Config(calib=int8_kw.get("calib"), method=int8_kw.get("calib_method"),
                              images=int8_kw.get("calib_images"), per_channel=(weights or "per-channel") == "per-channel",
                              keep_float=tuple(int8_kw.get("keep_float") or ()), gate=int8_kw.get("gate"),
                              search_tries=DEFAULT_SEARCH_TRIES if int8_kw.get("search_tries") is None else int(int8_kw["search_tries"]),
                              check_images=int8_kw.get("images"), labels=int8_kw.get("labels"),
                              budget=int8_kw.get("budget"))
        tune = TuneConfig(target=tune_kw.get("tune_on") or "local", threads=tune_kw.get("threads") or 1,
                          rounds=tune_kw.get("tune_rounds"), runs=tune_kw.get("tune_runs"),
                          prefer=tune_kw.get("tune_delegate") or "cpu", options=tune_kw.get("tune_options"),
                          budget_s=tune_kw.get("tune_seconds") or _default_budget())
        return cls(format=fmt, int8=int8, tune=tune, **kw)
