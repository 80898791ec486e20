"""The report data model: report.json's schema (versioned), validated on read and write.

`gate report ...` commands and the PR comment work from report.json alone, so a report
coming from an artifact is untrusted data: Report.model_validate_json checks it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.measure.bench import Latency
from gate.verdict.check import Check

SCHEMA_VERSION = 1


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_M):
    kind: str
    message: str
    file: str | None = None
    field: str | None = None
    line: int | None = None
    hint: str | None = None
    exit_code: int


class Evaluation(_M):
    examples: int = Field(ge=0)
    accuracy: dict[str, float]                      # top-k of the classifier output ({} when there is none)
    seconds: float
    predictions: list[int] | None = None
    metrics: dict[str, float | None] | None = None  # evaluate.metrics and the fidelity metrics, by name
    unavailable: dict[str, str] | None = None       # metrics that could not be computed, and why


class Artifact(_M):
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
    proxies: dict | None = None      # deterministic figures of the .tflite (gate.measure.proxies)


class Report(_M):
    schema_version: Literal[1] = SCHEMA_VERSION
    tool: str = "model-gate"
    created_at: str
    status: Literal["pass", "fail", "error"]
    exit_code: int = Field(ge=0, le=255)
    summary: str
    versions: dict[str, str]
    environment: dict[str, str | int | None]
    config: dict | None = None
    model: dict | None = None
    policy: dict | None = None
    trust: dict | None = None                # trust_model_code as decided (base branch rule)
    data: dict[str, dict] | None = None
    original: Evaluation | None = None
    reference: Artifact | None = None
    candidate: Artifact | None = None
    benchmark: dict | None = None
    baseline: dict | None = None             # the base branch's candidate and the comparison with it
    plan: dict | None = None                 # the policy's steps planned on the model before any fine-tuning
    stages: list[dict] | None = None         # optimization stages: original, pruned, ..., converted
    verification: dict | None = None         # what a later stage lost of an earlier one's work
    bridge: dict | None = None               # Keras 3 -> tf_keras bridge check (max_abs_diff, tolerance)
    target: dict | None = None               # where latency was measured: {kind, name, facts} (gate.measure.targets)
    delegation: dict | None = None           # ops on the accelerator vs the CPU, by model (adb op profiling)
    on_target: dict | None = None            # both models scored on the target (evaluate.on_target)
    checks: list[Check] = []
    notes: list[str] = []
    timings_s: dict[str, float] = {}
    error: ErrorInfo | None = None


def json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"model-gate report v{SCHEMA_VERSION}"
    return schema
