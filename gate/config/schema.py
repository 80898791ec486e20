"""The typed, validated shape of gate.yml and of policies (pydantic, no TF).

Everything is frozen and strict: unknown keys, wrong types and impossible values are
refused at the door. `config.py` turns validation errors into messages with file,
field path and line.
"""
from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gate.config.metrics import FIDELITY, parse_metric
from gate.config.sources import SourceSpec
from gate.config.steps import Step, Verify
from gate.config.strict import Strict
from gate.formats import EXPECTED


class Quantization(str, Enum):
    """Post-training quantization modes of the TFLite converter."""

    none = "none"          # float32
    dynamic = "dynamic"    # dynamic range: int8 weights, float activations
    float16 = "float16"    # float16 weights
    int8 = "int8"          # full integer with a representative dataset
    int16x8 = "int16x8"    # int16 activations, int8 weights


class Quantizer(str, Enum):
    """Which tool quantizes: the TFLite converter (TensorFlow), or LiteRT Quantizer on the
    float .tflite (litert-quantizer: int4 weights, blockwise, the only choice for a committed .tflite)."""

    tflite = "tflite"
    litert = "litert"


class Recipe(str, Enum):
    """LiteRT Quantizer recipes (litert_quantizer.recipe), by their own names."""

    dynamic_wi8_afp32 = "dynamic_wi8_afp32"            # int8 channelwise weights, activations quantized on the fly
    dynamic_legacy_wi8_afp32 = "dynamic_legacy_wi8_afp32"   # the TF converter's dynamic range (tensors >= 1024)
    dynamic_wi4_afp32 = "dynamic_wi4_afp32"            # int4 channelwise weights, dynamic
    dynamic_wi8b32_afp32 = "dynamic_wi8b32_afp32"      # blockwise (32) int8 weights
    dynamic_wi8b64_afp32 = "dynamic_wi8b64_afp32"
    dynamic_wi4b32_afp32 = "dynamic_wi4b32_afp32"      # blockwise (32) int4 weights
    dynamic_wi4b64_afp32 = "dynamic_wi4b64_afp32"
    weight_only_wi8_afp32 = "weight_only_wi8_afp32"    # int8 weights dequantized to float compute
    weight_only_wi4_afp32 = "weight_only_wi4_afp32"
    static_wi8_ai8 = "static_wi8_ai8"                  # int8 weights and activations, calibrated on data.train
    static_wi8_ai16 = "static_wi8_ai16"                # int8 weights, int16 activations, calibrated


STATIC_RECIPES = frozenset({Recipe.static_wi8_ai8, Recipe.static_wi8_ai16})


class IoType(str, Enum):
    float32 = "float32"
    int8 = "int8"
    uint8 = "uint8"


class KeptActivations(str, Enum):
    """What the ops kept out of int8 compute in: float32, or int16 activations with int8 weights."""

    float = "float"
    int16 = "int16"


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc}): {text!r}") from None
    return text


class KeepFloat(Strict):
    """Ops the quantizing conversion leaves in float (selective fallback): named by regex,
    and/or the `worst` N ranked by measured harm (gate.measure.fallback)."""

    layers: list[Annotated[str, AfterValidator(_regex)]] = Field(
        [], description="Regexes (re.search) on Keras layer names and TFLite op/tensor names; every regex must "
                        "match at least one quantized op.")
    worst: int = Field(0, ge=0, le=1000, description="Also keep the N ops whose quantization hurts most, ranked "
                                                     "by ablation on calibration examples (each candidate op kept "
                                                     "float alone; the gain in agreement with the float model).")
    activations: KeptActivations = Field(
        KeptActivations.float, strict=False,
        description="float: the kept ops compute in float32; int16: int16 activations with int8 weights "
                    "(LiteRT Quantizer static int8 only).")

    @model_validator(mode="after")
    def _something_kept(self) -> "KeepFloat":
        if not self.layers and not self.worst:
            raise ValueError("set layers (regexes) and/or worst (a number of ops); an empty keep_float keeps "
                             "nothing")
        return self


class SizeMeasure(str, Enum):
    raw = "raw"
    gzip = "gzip"


class ConvertSpec(Strict):
    """How the optimized Keras model becomes a .tflite."""

    quantization: Quantization = Field(Quantization.none, strict=False)
    io: IoType = Field(IoType.float32, strict=False, description="Input/output tensor type (integer io needs int8).")
    representative_samples: int = Field(
        200, ge=1, le=100_000,
        description="Train examples used to calibrate int8/int16x8 activation ranges.")
    sparsity: bool = Field(False, description="Store sparse weights (Optimize.EXPERIMENTAL_SPARSITY) for "
                                             "XNNPACK sparse inference.")
    quantizer: Quantizer = Field(
        Quantizer.tflite, strict=False,
        description="tflite: the TFLite converter quantizes; litert: LiteRT Quantizer quantizes the float .tflite "
                    "(a recipe, or quantization mapped to one: dynamic -> dynamic_legacy_wi8_afp32, int8 -> "
                    "static_wi8_ai8, int16x8 -> static_wi8_ai16).")
    recipe: Recipe | None = Field(None, strict=False, description="A LiteRT Quantizer recipe (quantizer: litert).")
    keep_float: KeepFloat | None = Field(
        None, description="Ops left out of quantization: regexes and/or the N most harmful (selective fallback). "
                          "quantizer: tflite needs quantization: int8; quantizer: litert any recipe.")

    @field_validator("io")
    @classmethod
    def _io_needs_int8(cls, io: IoType, info: ValidationInfo) -> IoType:
        quantization = info.data.get("quantization")
        if io is not IoType.float32 and quantization is not Quantization.int8:
            got = quantization.value if quantization else "?"
            raise ValueError(f"io: {io.value} needs quantization: int8 (got {got}); use io: float32")
        return io

    @field_validator("keep_float")
    @classmethod
    def _keep_float_needs_quantizing(cls, keep: KeepFloat | None, info: ValidationInfo) -> KeepFloat | None:
        if keep is None:
            return keep
        quantization, quantizer = info.data.get("quantization"), info.data.get("quantizer")
        recipe = info.data.get("recipe")
        if quantizer is Quantizer.litert:
            if recipe is None and quantization is Quantization.none:
                raise ValueError("keep_float keeps ops out of quantization, but nothing is quantized "
                                 "(quantization: none, no recipe); set a recipe or quantization, or remove keep_float")
            static_int8 = recipe is Recipe.static_wi8_ai8 or (recipe is None and quantization is Quantization.int8)
            if keep.activations is KeptActivations.int16 and not static_int8:
                raise ValueError("keep_float.activations: int16 applies to static int8 quantization (int8 or recipe "
                                 "static_wi8_ai8); use activations: float")
            return keep
        if quantization is not Quantization.int8:
            got = quantization.value if quantization else "?"
            raise ValueError(f"keep_float needs a quantizing mode: with quantizer: tflite, quantization: int8 (got "
                             f"{got}); for dynamic range or int16x8 use quantizer: litert (its recipes keep ops "
                             "float by regex), or remove keep_float")
        if keep.activations is KeptActivations.int16:
            raise ValueError("keep_float.activations: int16 (mixed int8/int16 ops) needs quantizer: litert; the "
                             "TFLite converter keeps ops in float only (activations: float)")
        return keep

    @model_validator(mode="after")
    def _quantizer_fields(self) -> "ConvertSpec":
        if self.recipe is not None and self.quantizer is not Quantizer.litert:
            raise ValueError("recipe is a LiteRT Quantizer recipe: set quantizer: litert")
        if self.quantizer is Quantizer.litert:
            if self.recipe is not None and self.quantization is not Quantization.none:
                raise ValueError(f"set either quantization ({self.quantization.value}) or recipe "
                                 f"({self.recipe.value}), not both")
            if self.recipe is None and self.quantization is Quantization.float16:
                raise ValueError("LiteRT Quantizer has no float16 recipe; use quantizer: tflite for float16")
            if self.io is not IoType.float32:
                raise ValueError("LiteRT Quantizer keeps float32 model inputs and outputs; use io: float32 "
                                 "(or quantizer: tflite for integer io)")
            if self.sparsity:
                raise ValueError("sparsity: true is a TFLite converter option; use quantizer: tflite")
        return self

    @property
    def calibrates(self) -> bool:
        """Whether this conversion draws calibration samples from data.train."""
        if self.recipe is not None:
            return self.recipe in STATIC_RECIPES
        return self.quantization in (Quantization.int8, Quantization.int16x8)

    @property
    def label(self) -> str:
        """How the candidate is named in reports: the mode, or the recipe."""
        return self.recipe.value if self.recipe is not None else self.quantization.value


class Policy(Strict):
    """An optimization policy: what is done to the model before it ships."""

    description: str = Field("", description="One line shown by `gate policy list`.")
    extends: str | None = Field(
        None, description="A preset name or a path (relative to this file) whose fields this one overrides.")
    steps: list[Step] = Field([], description="Optimization steps, applied in order, each fine-tuned. Under "
                                              "extends: merged by position with the parent's steps.")
    replace_steps: bool = Field(False, description="Under extends: replace the parent's steps with this "
                                                   "policy's list instead of merging them by position.")
    verify: Verify = Verify()
    convert: ConvertSpec = ConvertSpec()

    @model_validator(mode="after")
    def _qat_converts_int8(self) -> "Policy":
        kinds = [s.kind for s in self.steps]
        if "qat" in kinds:
            if kinds.count("qat") > 1 or kinds[-1] != "qat":
                raise ValueError("qat must be the last step, and appear once (its fake-quant wrappers stay "
                                 "until conversion)")
            if self.convert.quantization not in (Quantization.int8, Quantization.dynamic):
                raise ValueError(f"a qat step converts to int8; set convert.quantization: int8 "
                                 f"(got {self.convert.quantization.value})")
            if self.convert.keep_float is not None:
                raise ValueError("convert.keep_float applies to post-training quantization; a qat step quantizes "
                                 "during training (its fake-quant ranges convert as they are): remove keep_float, "
                                 "or the qat step")
        return self


class DataSpec(Strict):
    train: SourceSpec | None = Field(
        None, description="Calibration and fine-tuning examples: an .npz with arrays x and y, a directory of "
                          "class subfolders of images, or a mapping {npz | images | tfrecord | csv | python: ...} "
                          "(docs/configuration.md).")
    eval: SourceSpec = Field(..., description="Examples both models are scored on: the same forms as train.")


class SizeLimit(Strict):
    max: float = Field(..., gt=0, description="Largest allowed candidate size in KiB (1 KiB = 1024 bytes).")
    measure: SizeMeasure = Field(SizeMeasure.raw, strict=False)


class CompressionLimit(Strict):
    min: float = Field(..., gt=0, description="Smallest allowed reference-float-TFLite bytes / candidate bytes.")
    measure: SizeMeasure = Field(SizeMeasure.gzip, strict=False)


def _fraction(value: object) -> object:
    """"2%" -> 0.02; numbers pass through (0.02 means 2 %)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"not a percentage: {value!r}") from None
    return value


Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0, le=10)]


class AccuracyLimit(Strict):
    min: float | None = Field(None, ge=0, le=1, description="Smallest allowed candidate accuracy (0..1).")
    max_drop: float | None = Field(
        None, ge=0, le=1,
        description="Largest allowed drop vs the original Keras model, absolute (0.01 = 1 point).")
    max_drop_vs_base: float | None = Field(
        None, ge=0, le=1, description="Largest allowed drop vs the base branch's candidate (0.005 = 0.5 points).")
    mode: Literal["point", "ci"] = Field(
        "point", description="point: judge the measured drop; ci: judge the upper bound of its bootstrap "
                             "interval (conservative: a small eval set must show the drop is within the limit).")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    top_k: int = Field(1, ge=1, description="Which top-k accuracy these limits judge.")


class SizeChangeLimit(Strict):
    max_increase: Fraction = Field(..., description='Largest allowed growth vs the base candidate: 0.02 or "2%".')
    measure: SizeMeasure = Field(SizeMeasure.raw, strict=False)


class LatencyMsLimit(Strict):
    p50_max: float | None = Field(None, gt=0, description="Largest allowed candidate median latency, ms.")
    p99_max: float | None = Field(None, gt=0, description="Largest allowed candidate p99 latency, ms.")


class LatencyRatioLimit(Strict):
    max_ratio: float | None = Field(
        None, gt=0, description="Largest allowed candidate p50 / reference p50, measured in the same run.")
    max_regression: Fraction | None = Field(
        None, description='Largest allowed slowdown vs the base candidate, same run: 0.05 or "5%".')
    inconclusive: Literal["pass", "fail"] = Field(
        "pass", description="What a latency check counts as when its interval still straddles the limit "
                            "after the time budget.")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    time_budget_s: float = Field(30, gt=0, le=3600, description="Most seconds spent deciding one latency check.")


class ProxyLimit(Strict):
    max: float | None = Field(None, ge=0, description="Largest allowed value for the candidate.")
    max_increase: Fraction | None = Field(None, description='Largest allowed growth vs the base: 0.02 or "2%".')


class ProxyLimits(Strict):
    """Proxies of the candidate .tflite: parameters, non-zero parameters, unique values and
    MACs are read from the file (deterministic); peak_memory_bytes is measured, so it moves
    a little from run to run."""

    parameters: ProxyLimit | None = None
    nonzero_parameters: ProxyLimit | None = None
    unique_values: ProxyLimit | None = None
    macs: ProxyLimit | None = None
    peak_memory_bytes: ProxyLimit | None = Field(
        None, description="Peak resident growth loading and running the model once (measured, not exact).")


MetricChange = Annotated[float, BeforeValidator(_fraction), Field(ge=0, le=1e6)]


class MetricLimit(Strict):
    """Limits on one metric of `evaluate.metrics` (gate.config.metrics). Changes vs the
    original (max_drop / max_increase) and vs the base branch are relative to the
    reference value for error metrics (mae, mse, rmse, max_abs_error: 0.05 or "5%" = 5 %
    more error) and absolute for the others (accuracy-like fractions: 0.01 = 1 point;
    snr_db in dB)."""

    min: float | None = Field(None, description="Smallest allowed candidate value.")
    max: float | None = Field(None, description="Largest allowed candidate value.")
    max_drop: MetricChange | None = Field(None, description="Higher-is-better metrics: largest allowed drop vs the "
                                                             "original model.")
    max_increase: MetricChange | None = Field(None, description="Error metrics: largest allowed increase vs the "
                                                                 'original model, relative ("5%").')
    max_drop_vs_base: MetricChange | None = Field(None, description="Largest allowed drop vs the base branch's "
                                                                     "candidate.")
    max_increase_vs_base: MetricChange | None = Field(None, description="Largest allowed increase vs the base "
                                                                         'branch\'s candidate ("2%").')
    mode: Literal["point", "ci"] = Field(
        "point", description="point: judge the measured change; ci: the far end of its paired bootstrap interval "
                             "(metrics with per-example values: accuracy, top_k, mae, mse, rmse, cosine).")
    confidence: float = Field(0.95, gt=0.5, lt=1)

    def set_limits(self) -> list[str]:
        return [k for k in ("min", "max", "max_drop", "max_increase", "max_drop_vs_base", "max_increase_vs_base")
                if getattr(self, k) is not None]


class DelegationLimit(Strict):
    """How much of the candidate's graph must run on the accelerator (benchmark.target.adb
    with a delegate): from benchmark_model's delegation log and op profile."""

    full: bool | None = Field(None, description="true: every op on the accelerator (one partition, nothing on "
                                                "the CPU).")
    min_share: float | None = Field(None, ge=0, le=1, description="Smallest allowed share of ops on the "
                                                                  "accelerator (0.95).")
    max_drop_vs_base: Fraction | None = Field(None, description="Largest allowed drop of that share vs the base "
                                                                "branch's candidate (0.05 = 5 points).")

    @model_validator(mode="after")
    def _some(self) -> "DelegationLimit":
        if self.full is None and self.min_share is None and self.max_drop_vs_base is None:
            raise ValueError("set full: true, min_share or max_drop_vs_base")
        if self.full is False:
            raise ValueError("full: false judges nothing; remove it or use min_share")
        return self


class Thresholds(Strict):
    not_judged: Literal["fail", "pass"] = Field(
        "fail", description="What a configured limit that could not be judged counts as (no base branch "
                            "although one was expected, git missing, a figure that could not be measured). "
                            "Either way the report says so.")
    size: SizeChangeLimit | None = None
    size_kb: SizeLimit | None = None
    compression: CompressionLimit | None = None
    accuracy: AccuracyLimit | None = None
    latency_ms: LatencyMsLimit | None = None
    latency: LatencyRatioLimit | None = None
    proxies: ProxyLimits | None = None
    delegation: DelegationLimit | None = None
    metrics: dict[str, MetricLimit] | None = Field(
        None, description="Limits per metric name (mae, score/mae, snr_db, top_5...): min, max, max_drop | "
                          "max_increase (vs the original), max_drop_vs_base | max_increase_vs_base.")

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, metrics: dict[str, MetricLimit] | None) -> dict[str, MetricLimit] | None:
        if not metrics:
            return metrics
        seen: set[str] = set()
        for text, limit in metrics.items():
            name = parse_metric(text)
            info = name.info
            if not limit.set_limits():
                raise ValueError(f"{text}: set at least one of min, max, {info.change_limit}, "
                                 f"{info.change_limit}_vs_base")
            wrong = "max_increase" if info.higher_is_better else "max_drop"
            for key in (wrong, wrong + "_vs_base"):
                if getattr(limit, key) is not None:
                    better = "higher" if info.higher_is_better else "lower"
                    raise ValueError(f"{text}: {key} does not apply, {name.metric} is better {better}; use "
                                     f"{key.replace(wrong, info.change_limit)}")
            if name.metric in FIDELITY and getattr(limit, info.change_limit) is not None:
                raise ValueError(f"{text}: {name.metric} is already measured against the original model; use min "
                                 "or max")
            if str(name) in seen:
                raise ValueError(f"{text}: the metric {name} is listed twice")
            seen.add(str(name))
        return metrics     # keys as written: the checks are named (and find their gate.yml line) by them


class AdbTarget(Strict):
    """An Android device over adb, timed by LiteRT's own `benchmark_model` binary (the
    ABI-specific build LiteRT publishes; the gate ships none)."""

    serial: str | None = Field(None, description="The device's serial (`adb devices`); unset: the only device "
                                                 "attached.")
    benchmark_model: str = Field(..., description="Path (relative to gate.yml) of LiteRT's benchmark_model binary "
                                                  "built for the device's ABI.")
    adb: str = Field("adb", description="The adb client (a name on PATH or a path).")
    delegate: Literal["none", "gpu", "nnapi"] = Field(
        "none", description="none: CPU (XNNPACK); gpu: --use_gpu=true; nnapi: --use_nnapi=true.")
    flags: list[str] = Field([], description="More benchmark_model flags, as written (e.g. "
                                             "--gpu_precision_loss_allowed=false).")
    rounds: int = Field(6, ge=2, le=1000, description="Runs of benchmark_model per model, alternating reference "
                                                      "and candidate (the A/B test's first look).")
    timeout_s: float = Field(600, gt=0, le=86_400, description="Longest one adb command may take.")

    @field_validator("flags")
    @classmethod
    def _flags(cls, flags: list[str]) -> list[str]:
        owned = ("--graph", "--num_threads", "--warmup_runs", "--num_runs", "--enable_op_profiling",
                 "--report_peak_memory_footprint", "--use_gpu", "--use_nnapi", "--min_secs", "--warmup_min_secs")
        for flag in flags:
            if not flag.startswith("--"):
                raise ValueError(f"expected benchmark_model flags like --name=value; received {flag!r}")
            if flag.split("=", 1)[0] in owned:
                raise ValueError(f"{flag.split('=', 1)[0]} is set by the gate (benchmark.threads / warmup / runs, "
                                 "delegate); remove it from flags")
        return flags


class SshTarget(Strict):
    """A Linux board over ssh (OpenSSH client), timed by the gate's own script with the
    board's ai-edge-litert."""

    host: str = Field(..., min_length=1)
    port: int = Field(22, ge=1, le=65_535)
    user: str = Field(..., min_length=1)
    key: str = Field(..., min_length=1, description="The private key: a file path (relative to gate.yml) or the "
                                                    "name of an environment variable holding it. Never logged.")
    known_hosts: str = Field(..., min_length=1, description="known_hosts file with the board's host key (relative "
                                                            "to gate.yml): host keys are always checked.")
    python: str = Field("python3", description="The board's Python with ai-edge-litert and numpy installed.")
    connect_timeout_s: float = Field(10, gt=0, le=600)
    timeout_s: float = Field(600, gt=0, le=86_400, description="Longest one remote command may take.")
    instances: int = Field(3, ge=1, le=15, description="Interpreter instances per model in the board's A/B "
                                                       "rounds.")
    rounds: int = Field(20, ge=2, le=10_000, description="Rounds of the A/B test's first look.")
    accelerator: Literal["cpu", "gpu", "npu"] = Field(
        "cpu", description="The board's accelerator for the delegation row: gpu or npu runs LiteRT's "
                           "benchmark_litert_model (litert-benchmark) on the board with --use_gpu / --use_npu and "
                           "reads its result_json. Latency is timed on the CPU interpreter either way.")


class TargetSpec(Strict):
    """Where latency is measured: exactly one of adb or ssh (or the string `local`)."""

    adb: AdbTarget | None = None
    ssh: SshTarget | None = None

    @model_validator(mode="after")
    def _one(self) -> "TargetSpec":
        if (self.adb is None) == (self.ssh is None):
            raise ValueError("set exactly one of adb or ssh (or target: local)")
        return self

    @property
    def kind(self) -> str:
        return "adb" if self.adb is not None else "ssh"


class BenchmarkSpec(Strict):
    threads: int = Field(1, ge=1, le=256, description="Interpreter threads.")
    warmup: int = Field(10, ge=0, le=100_000, description="Untimed runs before timing.")
    runs: int = Field(100, ge=1, le=1_000_000, description="Timed runs per model (at least).")
    min_time_s: float = Field(0.0, ge=0, le=3600, description="Keep timing until this many seconds per model.")
    target: Literal["local"] | TargetSpec = Field(
        "local", description="Where latency is measured: local (this machine's CPU), {adb: {...}} (an Android "
                             "device with LiteRT's benchmark_model) or {ssh: {...}} (a Linux board). "
                             "`gate check --target local` overrides it.")

    @property
    def target_kind(self) -> str:
        return "local" if self.target == "local" else self.target.kind


class TopK(Strict):
    top_k: int = Field(..., ge=1, le=1000)


class EvaluateSpec(Strict):
    top_k: list[int] = Field([1], min_length=1, description="Top-k accuracies to report.")
    batch_size: int = Field(256, ge=1, le=65_536)
    max_examples: int | None = Field(None, ge=1, description="Score only the first N eval examples.")
    on_target: bool = Field(False, description="Also score both models on the benchmark target (an ssh board): "
                                               "accuracy and fidelity as the device computes them, beside the "
                                               "runner's.")
    metrics: list[str | TopK] | None = Field(
        None, description="Metrics to report, Keras-style: accuracy, {top_k: 5} (or top_5), binary_accuracy, auc, "
                          "mae, mse, rmse, max_abs_error; fidelity vs the original: snr_db, cosine, max_abs_diff, "
                          "top1_agreement. Qualify by output for several outputs (score/mae). Default: by task "
                          "(accuracy, binary_accuracy or mae) plus the fidelity metrics.")

    @model_validator(mode="after")
    def _ks_positive(self) -> "EvaluateSpec":
        if any(k < 1 for k in self.top_k):
            raise ValueError("top_k values must be >= 1")
        return self

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, metrics: list | None) -> list[str] | None:
        if metrics is None:
            return None
        names = [str(parse_metric(f"top_{m.top_k}" if isinstance(m, TopK) else m)) for m in metrics]
        return list(dict.fromkeys(names))


class LimitsSpec(Strict):
    """Resource limits of the worker process that loads, converts and runs the model."""

    timeout_s: float = Field(3600, gt=0, le=86_400, description="Wall-clock limit for the whole measurement.")
    memory_mb: int = Field(16_384, ge=512, description="Address-space limit (RLIMIT_AS) of the worker, MiB.")
    cpu_s: int = Field(7200, ge=10, description="CPU-time limit (RLIMIT_CPU) of the worker, seconds.")


class ConfigFile(Strict):
    """gate.yml as written. `policy` is resolved separately (preset, path or inline)."""

    model: str = Field(..., description=f"Path to {EXPECTED}.")
    data: DataSpec
    policy: str | dict | None = Field(
        None, description="A preset name (gate policy list), a path to a policy YAML, or an inline policy.")
    thresholds: Thresholds = Thresholds()
    benchmark: BenchmarkSpec = BenchmarkSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    limits: LimitsSpec = LimitsSpec()
    trust_model_code: bool = Field(
        False, description="Allow SavedModels, Lambda layers and custom pruning schedules. In a pull request "
                           "this is honoured only when the base branch's gate.yml sets it too.")

    @model_validator(mode="after")
    def _on_target_needs_ssh(self) -> "ConfigFile":
        if self.evaluate.on_target and self.benchmark.target_kind != "ssh":
            raise ValueError("evaluate.on_target: true scores the models on an ssh board; set benchmark.target: "
                             f"{{ssh: ...}} (got {self.benchmark.target_kind}) or remove on_target")
        return self


class ModelEntrySchema(ConfigFile):
    """Schema-only: one entry of `models:`; every key may come from the top-level defaults."""

    model: str | None = None  # type: ignore[assignment]
    data: DataSpec | None = None  # type: ignore[assignment]
    policy: str | Policy | None = None  # type: ignore[assignment]


class ConfigFileSchema(ConfigFile):
    """Schema-only twin of ConfigFile with the inline policy typed, for editors: one model
    (`model:`), or several (`models:`, the other keys their defaults: gate.config.models)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["model"]}, {"required": ["models"]}]})

    model: str | None = Field(  # type: ignore[assignment]
        None, description=f"Path to {EXPECTED} (or `models:` for several).")
    data: DataSpec | None = None  # type: ignore[assignment]
    policy: str | Policy | None = None  # type: ignore[assignment]
    models: dict[str, ModelEntrySchema] | None = Field(
        None, description="Several models: name -> what a single config has; the top-level keys are defaults, "
                          "merged key by key (a policy replaces the default whole).")


SchemaKind = Literal["policy", "config"]


def json_schema(kind: SchemaKind) -> dict:
    model = Policy if kind == "policy" else ConfigFileSchema
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "model-gate policy" if kind == "policy" else "model-gate gate.yml"
    return schema
