"""What the checks judge: every measured model of a run as the registry sees it. Built
in the worker from the stage results (gate.run.worker.check); numpy and the latency A/B test
(gate.verdict.abtest, LiteRT) only, never TensorFlow."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gate.config.schema import BenchmarkSpec
from gate.measure.bench import Latency
from gate.measure.scores import MetricValue
from gate.measure.sizes import FileSizes
from gate.measure.tasks import OutputTask
from gate.verdict.abtest import compare_latency


@dataclass(frozen=True)
class Side:
    """One measured model: the original (Keras, no .tflite), the float32 reference, the
    candidate, or the base branch's candidate."""

    accuracy: Mapping[int, float]                  # k -> top-k accuracy on the eval split (empty: no classifier)
    predictions: tuple[int, ...] | None = None     # top-1 class per eval example (None: not paired)
    sizes: FileSizes | None = None                 # the .tflite's bytes
    content: bytes | None = field(default=None, repr=False)   # the .tflite, for the latency A/B test
    latency: Latency | None = None                 # gate.measure.bench figures
    proxies: Mapping[str, float | int | None] | None = None    # gate.measure.proxies figures
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)   # gate.measure.scores, by report name


@dataclass(frozen=True)
class Evidence:
    original: Side
    reference: Side
    candidate: Side
    labels: np.ndarray | None           # the classifier output's class ids (paired statistics; None: none)
    example: Mapping[str, np.ndarray]   # one real eval input per model input, batch of 1 (latency A/B)
    bench: BenchmarkSpec
    base: Side | None = None            # None: no base branch candidate in this run
    base_unchanged: bool = False        # the base has the same model, data and policy hashes
    no_base: tuple[str, str] | None = None   # (gate.run.protocol.NoBaseReason kind, why) when base is None
    compare_latency: Callable = compare_latency   # gate.verdict.abtest.compare_latency
    tasks: Mapping[str, OutputTask] = field(default_factory=dict)    # output name -> task (metric names resolve here)
    float_reference: bool = True        # the reference is a float32 .tflite (compression vs float applies)
    reference_label: str = "float32 TFLite"
    measured_on: str | None = None      # the benchmark target's name when it is not the runner (gate.measure.targets)
    delegation: Callable | None = None  # (who, .tflite bytes) -> Delegation | why not: the target's op profile
