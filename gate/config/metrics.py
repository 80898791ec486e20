"""The metrics gate.yml can name (`evaluate.metrics`, `thresholds.metrics`), as data (no TF,
no numpy): which way is better, how a change is measured, what each needs.

A name is `[output/]metric`: `mae`, `score/mae` (an output of a several-output model),
`top_5` (top-k accuracy for k = 5). Label metrics need targets (`y`); fidelity metrics
compare a model's outputs with the original model's on the same examples and need none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CLASSES, BINARY, REGRESSION = "classifier", "binary", "regression"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    unit: str             # how values are shown: "" a fraction (as %), "value" a plain number, "dB"
    relative: bool        # max_drop / max_increase are relative to the reference value (error metrics)
    labels: bool          # needs targets (y)
    tasks: tuple[str, ...]
    paired: bool          # per-example values exist: paired statistics (bootstrap) apply
    description: str

    @property
    def change_limit(self) -> str:
        """The name of the limit on a change vs the original: max_drop or max_increase."""
        return "max_drop" if self.higher_is_better else "max_increase"


_CATALOGUE = (
    MetricInfo("accuracy", True, "", False, True, (CLASSES, BINARY), True,
               "top-1 accuracy (a one-unit output: binary accuracy at 0.5)"),
    MetricInfo("binary_accuracy", True, "", False, True, (BINARY,), True,
               "a one-unit (sigmoid) output, class 1 when > 0.5"),
    MetricInfo("auc", True, "", False, True, (BINARY,), False, "ROC AUC of a one-unit (sigmoid) output"),
    MetricInfo("mae", False, "value", True, True, (REGRESSION, BINARY), True, "mean absolute error"),
    MetricInfo("mse", False, "value", True, True, (REGRESSION, BINARY), True, "mean squared error"),
    MetricInfo("rmse", False, "value", True, True, (REGRESSION, BINARY), True, "root mean squared error"),
    MetricInfo("max_abs_error", False, "value", True, True, (REGRESSION, BINARY), False,
               "largest absolute error over the examples"),
    MetricInfo("snr_db", True, "dB", False, False, (CLASSES, BINARY, REGRESSION), False,
               "signal-to-noise ratio of the outputs vs the original model's, dB"),
    MetricInfo("cosine", True, "value", False, False, (CLASSES, BINARY, REGRESSION), True,
               "mean cosine similarity of each example's outputs with the original model's (one-unit "
               "outputs: the cosine of the output column over the examples)"),
    MetricInfo("max_abs_diff", False, "value", False, False, (CLASSES, BINARY, REGRESSION), False,
               "largest absolute difference from the original model's outputs"),
    MetricInfo("top1_agreement", True, "", False, False, (CLASSES, BINARY), True,
               "share of examples whose top-1 class equals the original model's"),
)
METRICS: dict[str, MetricInfo] = {m.name: m for m in _CATALOGUE}
FIDELITY = tuple(m.name for m in _CATALOGUE if not m.labels)
_TOP_K = re.compile(r"^top_?(\d{1,3})$")
_OUTPUT = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


def top_k_info(k: int) -> MetricInfo:
    return MetricInfo(f"top_{k}", True, "", False, True, (CLASSES,), True, f"top-{k} accuracy")


@dataclass(frozen=True)
class MetricName:
    output: str | None    # None: unqualified (the model's only output, or resolved later)
    metric: str           # canonical: accuracy, top_5, mae, ...
    info: MetricInfo

    @property
    def k(self) -> int | None:
        m = _TOP_K.match(self.metric)
        return int(m.group(1)) if m else (1 if self.metric == "accuracy" else None)

    def qualified(self, output: str) -> str:
        return f"{output}/{self.metric}"

    def __str__(self) -> str:
        return self.metric if self.output is None else self.qualified(self.output)


def parse_metric(text: str) -> MetricName:
    """`mae`, `score/mae`, `top_5`, `top5` -> MetricName; ValueError naming the known ones."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a metric name must be a non-empty string")
    output, sep, metric = text.strip().rpartition("/")
    if sep and not _OUTPUT.match(output):
        raise ValueError(f"{text!r}: {output!r} is not an output name")
    metric = metric.lower()
    m = _TOP_K.match(metric)
    if m:
        k = int(m.group(1))
        if k < 1:
            raise ValueError(f"{text!r}: k must be >= 1")
        return MetricName(output or None, f"top_{k}", top_k_info(k))
    if metric == "top_k":
        raise ValueError(f"{text!r}: say which k, e.g. top_5 (or {{top_k: 5}})")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}, top_<k> (e.g. top_5); "
                         "qualify by output for several outputs (score/mae)")
    return MetricName(output or None, metric, METRICS[metric])
