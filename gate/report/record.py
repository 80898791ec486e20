"""The run record: what one run found, frozen and typed, section by section.

The parent starts it (trust, config), the worker fills it stage by stage (so an error
report keeps what finished) and returns it once (gate.run.protocol.WorkerResult); the
report (gate.report.model.Report) is this record plus the run's header. No TF here.

Sections that echo gate.yml back (`config.thresholds`, `policy.steps`) or hold per-layer
figures are JSON objects: their schema is gate.config.schema's, validated at load.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.measure.bench import Latency
from gate.verdict.check import Check

JsonObject = dict[str, Any]   # an echo of validated config, or per-layer figures (see the module doc)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrustInfo(Section):
    trust_model_code: bool
    source: str
    notes: list[str] = []


class DataPaths(Section):
    train: str | None
    eval: str | None
    train_source: JsonObject | None = None   # a source other than an .npz: {kind, ...as written}
    eval_source: JsonObject | None = None    # (gate.config.sources.SourceRef.describe)


class ConfigInfo(Section):
    path: str
    sha256: str
    name: str | None = None           # the entry under gate.yml's `models:` (None: one model)
    entry_sha256: str | None = None   # of that entry as merged with the defaults (gate.config.models)
    model: str | None
    data: DataPaths
    thresholds: JsonObject
    benchmark: JsonObject
    evaluate: JsonObject


class TensorInfo(Section):
    name: str
    shape: list[int | None]
    dtype: str
    activation: str | None = None
    quantized: bool | None = None


class TaskInfo(Section):
    output: str
    kind: str
    units: int
    activation: str | None = None


class ModelInfo(Section):
    format: str
    path: str
    file_bytes: int
    params: int | None = None
    layers: int | None = None
    flavour: str | None = None
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    precision: str | None = None
    tasks: dict[str, TaskInfo] | None = None     # by output name, once the data is bound


class ArrayInfo(Section):
    shape: list[int | None]
    dtype: str


class SplitInfo(Section):
    path: str
    examples: int
    sha256: str
    source: str = "npz"                        # gate.config.sources.KINDS
    arrays: dict[str, ArrayInfo] = {}          # {} in reports written before arrays were recorded
    x_shape: list[int | None] | None = None
    x_dtype: str | None = None
    x_range: dict[str, list[float]] | None = None   # input array -> [min, max] (when checked)
    targets: dict[str, str] | None = None
    classes_seen: int | None = None


class PolicyInfo(Section):
    name: str
    source: str
    chain: list[str]
    description: str = ""
    steps: list[JsonObject] = []
    verify: JsonObject | None = None          # None in reports written before verification existed
    convert: JsonObject


class Evaluation(Section):
    examples: int = Field(ge=0)
    accuracy: dict[str, float]                      # top-k of the classifier output ({} when there is none)
    seconds: float
    predictions: list[int] | None = None
    metrics: dict[str, float | None] | None = None  # evaluate.metrics and the fidelity metrics, by name
    unavailable: dict[str, str] | None = None       # metrics that could not be computed, and why


class ProxiesInfo(Section):
    """Deterministic figures of a .tflite (gate.measure.proxies)."""

    parameters: int
    nonzero_parameters: int
    unique_values: int
    max_unique_per_tensor: int
    macs: int
    macs_by_op: dict[str, int]
    rss_delta_bytes: int | None = None
    peak_delta_bytes: int | None = None
    memory_method: str
    sparsity: float


class Artifact(Section):
    """One .tflite that was measured: the reference (the float32 conversion, or the committed
    .tflite at its own precision) or the candidate."""

    role: Literal["reference", "candidate"]
    quantization: str
    io: str
    label: str | None = None         # how the reference is named: "float32 TFLite", "model.tflite (int8, as committed)"
    quantizer: str | None = None     # tflite (the converter) | litert (LiteRT Quantizer) | none (as committed)
    precision: str | None = None     # what the file holds: float | float16 | dynamic_range | int8 | int16x8
    bytes_raw: int = Field(ge=0)
    bytes_gzip: int = Field(ge=0)
    sha256: str
    file: str | None = None          # the .tflite written next to the report (the candidate)
    convert_seconds: float | None = None
    calibration_samples: int = 0
    latency: Latency | None = None
    evaluation: Evaluation | None = None
    proxies: ProxiesInfo | None = None


class BenchmarkInfo(Section):
    settings: dict[str, str | int | float | None]


class BaseCandidateInfo(Section):
    bytes_raw: int
    bytes_gzip: int
    sha256: str | None = None         # of the base's candidate (gate export's manifest)
    accuracy: dict[str, float]
    metrics: dict[str, float | None] | None = None
    paired: bool                      # scored on the PR's eval examples, per example
    proxies: ProxiesInfo | None = None


class Comparison(Section):
    value: float | None = None
    low: float | None = None
    high: float | None = None
    passed: bool
    outcome: str
    detail: str | None = None


class BaselineInfo(Section):
    """The base branch's candidate and the checks judged against it."""

    sha: str | None = None
    chosen: str
    unchanged: bool
    fingerprint: dict[str, str | None] | None = None
    notes: list[str] = []
    has_model: bool | None = None     # False: the base branch has no model yet (this PR adds it)
    candidate: BaseCandidateInfo | None = None
    comparison: dict[str, Comparison] | None = None


class LeftLayer(Section):
    layer: str
    reason: str


class PlannedStep(Section):
    index: int
    kind: str
    name: str
    changes: list[str]
    left: list[LeftLayer]
    left_float: list[JsonObject]
    groups: Any = None
    notes: list[str]
    error: str | None = None


class PlanInfo(Section):
    """The policy's steps planned on the model before any fine-tuning."""

    roles: dict[str, list[str]]
    steps: list[PlannedStep]


class StageRow(Section):
    """One optimization stage: original, pruned, ..., converted."""

    name: str
    kind: str
    seconds: float
    params: int | None = None
    weights: JsonObject | None = None
    layers: dict[str, JsonObject] = {}
    selection: JsonObject | None = None
    notes: list[str] = []
    accuracy: dict[str, float] | None = None
    metrics: dict[str, float | None] | None = None
    bytes_raw: int | None = None
    bytes_gzip: int | None = None


class FindingInfo(Section):
    stage: str
    layer: str
    what: str
    achieved: float
    achieved_at: str
    now: float
    message: str


class VerificationInfo(Section):
    on_loss: str
    findings: list[FindingInfo]


class BridgeInfo(Section):
    max_abs_diff: float
    tolerance: float
    examples: int
    rule: str
    notes: list[str] = []


class TargetInfo(Section):
    """Where latency was measured (gate.measure.targets.Where): this machine, an adb device,
    an ssh board."""

    kind: Literal["local", "adb", "ssh"]
    name: str                                       # one line for humans: "Pixel 7 (arm64-v8a, Android 14) ..."
    facts: dict[str, str | int | float | None] = {}


class ModelDelegation(Section):
    """One model's ops on the accelerator vs the CPU (gate.measure.targets.delegation.Delegation)."""

    delegate: str                     # what was asked for: gpu | nnapi | npu | none
    accelerator: str | None           # the delegate kernel that took ops (None: nothing delegated)
    total_ops: int
    accelerated_ops: int | None       # None: the tool does not say (litert-benchmark)
    partitions: int
    cpu_ops: list[str]                # "TYPE [name]" of the nodes left on the CPU
    source: str
    share: float | None
    full: bool


class DelegationUnavailable(Section):
    unavailable: str                  # why this model's delegation could not be measured


class DelegationInfo(Section):
    """Delegation on the benchmark target, by model."""

    measured_on: str
    delegate: str
    reference: ModelDelegation | DelegationUnavailable | None = None
    candidate: ModelDelegation | DelegationUnavailable | None = None


class OnTargetInfo(Section):
    """evaluate.on_target: both models scored from the outputs the target computed."""

    measured_on: str
    reference: Evaluation | None = None
    candidate: Evaluation | None = None


class LayerRow(Section):
    """One op of the candidate .tflite (gate.measure.layers.LayerRow): size, precision and
    the quantization error at its output against the float model on eval examples."""

    index: int = Field(ge=0)
    name: str                            # the op's output tensor name
    layer: str | None = None             # the Keras layer it came from
    op: str
    parameters: int = Field(ge=0)
    bytes: int = Field(ge=0)
    share: float = Field(ge=0)           # of the file's bytes
    dtype: str
    weight_dtype: str | None = None
    bits: int | None = None
    sparsity: float | None = None
    unique_values: int | None = None
    quantized: bool
    snr_db: float | None = None          # 10 log10(signal / error) at its output, end to end
    rmse_per_scale: float | None = None  # sqrt(mse) / output scale (int8 outputs; ~0.29 is rounding alone)
    snr_drop_db: float | None = None     # SNR lost at this op (its inputs' lowest SNR - its own)
    debugger_rmse_per_scale: float | None = None   # QuantizationDebugger: the op's own error, sqrt(mse)/scale
    float_reason: str | None = None      # why it stayed float in a quantized model


class KeptOp(Section):
    name: str
    layer: str | None = None
    op: str
    snr_drop_db: float | None = None
    agreement_gain: float
    snr_gain_db: float


class KeepFloatInfo(Section):
    """What convert.keep_float kept float (gate.measure.fallback) and the ablation behind `worst`."""

    kept: list[str]
    by_rule: dict[str, str]
    activations: str
    worst: int = 0                       # keep_float.worst as asked; fewer are kept when fewer helped
    ranking: list[KeptOp] = []
    examples: int = 0
    baseline: dict[str, float] = {}
    seconds: float = 0.0


class RunRecord(Section):
    """Everything a run measured and judged; every field is optional so that an error
    report keeps what finished."""

    name: str | None = None                  # the model's entry under gate.yml's `models:` (None: one model)
    config: ConfigInfo | None = None
    model: ModelInfo | None = None
    policy: PolicyInfo | None = None
    trust: TrustInfo | None = None           # trust_model_code as decided (base branch rule)
    data: dict[str, SplitInfo] | None = None
    original: Evaluation | None = None
    reference: Artifact | None = None
    candidate: Artifact | None = None
    benchmark: BenchmarkInfo | None = None
    baseline: BaselineInfo | None = None     # the base branch's candidate and the comparison with it
    plan: PlanInfo | None = None
    stages: list[StageRow] | None = None
    verification: VerificationInfo | None = None   # what a later stage lost of an earlier one's work
    bridge: BridgeInfo | None = None         # Keras 3 -> tf_keras bridge check
    target: TargetInfo | None = None         # where latency was measured (gate.measure.targets)
    delegation: DelegationInfo | None = None  # ops on the accelerator vs the CPU, by model
    on_target: OnTargetInfo | None = None    # both models scored on the target (evaluate.on_target)
    layers: list[LayerRow] | None = None     # the candidate's ops (gate.measure.layers), a quantized candidate only
    keep_float: KeepFloatInfo | None = None  # the policy's selective fallback, as applied (gate.measure.fallback)
    checks: list[Check] = []
    notes: list[str] = []
    timings_s: dict[str, float] = {}

    def with_sections(self, **sections: Any) -> "RunRecord":
        """A copy with `sections` replaced, each validated against its field's type."""
        unknown = set(sections) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"not sections of the run record: {sorted(unknown)}")
        return type(self).model_validate({**dict(self), **sections})

    def with_notes(self, *texts: str) -> "RunRecord":
        return self.model_copy(update={"notes": [*self.notes, *texts]})

    def with_timing(self, stage: str, seconds: float) -> "RunRecord":
        return self.model_copy(update={"timings_s": {**self.timings_s, stage: round(seconds, 3)}})
