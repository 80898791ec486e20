"""Metrics of a model's outputs on the eval split (numpy + scipy; catalogue:
gate.config.metrics). Label metrics compare outputs with the targets; fidelity metrics
with the original model's outputs on the same examples. Per-example values are kept
where paired statistics need them (gate.verdict.stats).

Names: a single-output model's metrics are unqualified (`mae`); with several outputs
each is qualified by its output (`score/mae`). A metric that cannot be computed for an
output (mae of a classifier, anything with labels when there is no `y`) has no value and
says why: a threshold on it is `not_judged`, never dropped.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from gate.config.metrics import FIDELITY, MetricName, parse_metric
from gate.measure.tasks import OutputTask

SNR_CAP_DB = 200.0   # identical outputs: the SNR is infinite; reported as this many dB


@dataclass(frozen=True)
class MetricValue:
    name: str                     # as reported: `mae`, `score/mae`
    metric: str                   # canonical: mae, top_5, ...
    output: str
    value: float | None
    per_example: np.ndarray | None = field(default=None, repr=False)   # paired statistics
    why: str = ""                 # value None: why it could not be computed


@dataclass(frozen=True)
class Planned:
    name: str          # report name
    output: str | None  # None: could not be resolved (see why)
    metric: MetricName
    why: str = ""


def resolve(text: str, tasks: Mapping[str, OutputTask]) -> tuple[str, str | None, MetricName, str]:
    """(report name, output, metric, why-not) for a configured metric name: qualified names
    name their output; an unqualified one is the only output's, or the one output it can
    apply to."""
    metric = parse_metric(text)
    outputs = list(tasks)
    if metric.output is not None:
        if metric.output not in tasks:
            return text, None, metric, f"the model has no output '{metric.output}' (outputs: {', '.join(outputs)})"
        return _name(metric.output, metric.metric, outputs), metric.output, metric, ""
    if len(outputs) == 1:
        return metric.metric, outputs[0], metric, ""
    fits = [o for o in outputs if tasks[o].kind in metric.info.tasks]
    if len(fits) == 1:
        return _name(fits[0], metric.metric, outputs), fits[0], metric, ""
    choices = ", ".join(f"{o}/{metric.metric}" for o in (fits or outputs))
    return metric.metric, None, metric, f"the model has {len(outputs)} outputs: qualify the metric ({choices})"


def _name(output: str, metric: str, outputs: list[str]) -> str:
    return metric if len(outputs) == 1 else f"{output}/{metric}"


def default_metrics(task: OutputTask, has_targets: bool, ks: list[int]) -> list[str]:
    """The metrics reported for an output when evaluate.metrics is not set."""
    names: list[str] = []
    if has_targets:
        if task.kind == "classifier":
            names += ["accuracy"] + [f"top_{k}" for k in sorted(set(ks)) if k != 1]
        elif task.kind == "binary":
            names.append("binary_accuracy")
        else:
            names.append("mae")
    names += ["snr_db", "cosine", "max_abs_diff"]
    if task.is_classes:
        names.append("top1_agreement")
    return names


def plan(configured: list[str] | None, extra: list[str], tasks: Mapping[str, OutputTask], targets: set[str],
         ks: list[int]) -> list[Planned]:
    """Which metrics to compute: evaluate.metrics (default: by task), the fidelity metrics,
    and every metric a threshold names."""
    outputs = list(tasks)
    out: dict[str, Planned] = {}

    def add(name: str, output: str | None, metric: MetricName, why: str = "") -> None:
        out.setdefault(name, Planned(name, output, metric, why))

    for o in outputs:
        names = default_metrics(tasks[o], o in targets, ks) if configured is None else list(FIDELITY)
        for m in names:
            if m == "top1_agreement" and not tasks[o].is_classes:
                continue
            add(_name(o, m, outputs), o, parse_metric(m))
    for text in (configured or []):
        metric = parse_metric(text)
        if metric.output is None and len(outputs) > 1:
            fits = [o for o in outputs if tasks[o].kind in metric.info.tasks] or outputs
            for o in fits:
                add(_name(o, metric.metric, outputs), o, metric)
            continue
        add(*resolve(text, tasks))
    for text in extra:
        add(*resolve(text, tasks))
    return list(out.values())


# -- computing ------------------------------------------------------------------------------

def _flat(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def class_scores(out: np.ndarray) -> np.ndarray:
    """(N, classes) scores; a one-unit output is a sigmoid: [1 - p, p]."""
    s = _flat(out)
    return np.concatenate([1.0 - s, s], axis=1) if s.shape[1] == 1 else s


def top_k_correct(out: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    scores = class_scores(out)
    order = np.argsort(-scores, axis=1, kind="stable")   # ties go to the lower class id, as argmax does
    return (order[:, :min(k, scores.shape[1])] == y[:, None]).any(axis=1)


def top1(out: np.ndarray) -> np.ndarray:
    return np.argsort(-class_scores(out), axis=1, kind="stable")[:, 0]


def _auc(p: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import rankdata

    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if not pos or not neg:
        return None
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def compute(p: Planned, outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
            tasks: Mapping[str, OutputTask], original: Mapping[str, np.ndarray] | None) -> MetricValue:
    metric = p.metric.metric

    def missing(why: str) -> MetricValue:
        return MetricValue(p.name, metric, p.output or "", None, None, why)

    if p.output is None:
        return missing(p.why)
    task, out = tasks[p.output], outputs[p.output]
    if task.kind not in p.metric.info.tasks:
        return missing(f"{metric} does not apply to output '{p.output}', a {task.kind} "
                       f"({p.metric.info.description})")
    if not p.metric.info.labels:
        if original is None:
            return missing("fidelity metrics compare with the original model's outputs")
        return FIDELITY_METRICS[metric](p, _flat(original[p.output]), _flat(out))
    if p.output not in targets:
        return missing(f"no targets for output '{p.output}' in the eval data "
                       f"({'y' if len(tasks) == 1 else 'y.' + p.output})")
    return LABEL_METRICS[metric if p.metric.k is None else "accuracy"](p, out, targets[p.output])


def _value(p: Planned, value: float | None, per_example: np.ndarray | None = None, why: str = "") -> MetricValue:
    return MetricValue(p.name, p.metric.metric, p.output, value, per_example, why)


def _top_k(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    correct = top_k_correct(out, y, p.metric.k or 1)
    return _value(p, float(correct.mean()), correct.astype(np.float64))


def _binary_accuracy(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    correct = (_flat(out)[:, 0] > 0.5).astype(np.int64) == y
    return _value(p, float(correct.mean()), correct.astype(np.float64))


def _auc_metric(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    value = _auc(_flat(out)[:, 0], y)
    return _value(p, value, None, "" if value is not None else "auc needs examples of both classes in the eval targets")


def _error(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _flat(out) - np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def _mae(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    per = np.abs(_error(out, y)).mean(axis=1)
    return _value(p, float(per.mean()), per)


def _squared(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    per = (_error(out, y) ** 2).mean(axis=1)
    return _value(p, float(per.mean()) if p.metric.metric == "mse" else float(np.sqrt(per.mean())), per)


def _max_abs_error(p: Planned, out: np.ndarray, y: np.ndarray) -> MetricValue:
    return _value(p, float(np.abs(_error(out, y)).max()))


def _snr_db(p: Planned, a: np.ndarray, b: np.ndarray) -> MetricValue:
    noise = float(((a - b) ** 2).sum())
    signal = float((a ** 2).sum())
    value = SNR_CAP_DB if noise == 0 else (-SNR_CAP_DB if signal == 0 else 10 * np.log10(signal / noise))
    return _value(p, float(min(value, SNR_CAP_DB)))


def _cosine(p: Planned, a: np.ndarray, b: np.ndarray) -> MetricValue:
    examples = len(a)
    if a.shape[1] == 1:     # one value per example: the cosine of the outputs over the examples
        a, b = a.T, b.T
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both = (na == 0) & (nb == 0)
    per = np.where(both, 1.0, (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300))
    return _value(p, float(per.mean()), per if per.size == examples else None)


def _max_abs_diff(p: Planned, a: np.ndarray, b: np.ndarray) -> MetricValue:
    return _value(p, float(np.abs(a - b).max()))


def _top1_agreement(p: Planned, a: np.ndarray, b: np.ndarray) -> MetricValue:
    agree = (top1(b) == top1(a)).astype(np.float64)
    return _value(p, float(agree.mean()), agree)


# How each metric of the catalogue (gate.config.metrics) is computed: label metrics from the
# outputs and the targets, fidelity metrics from the outputs (b) and the original's (a), both
# flattened per example. tests/test_evaluate.py checks every catalogue name has its row.
LABEL_METRICS: dict[str, Callable[[Planned, np.ndarray, np.ndarray], MetricValue]] = {
    "accuracy": _top_k, "binary_accuracy": _binary_accuracy, "auc": _auc_metric, "mae": _mae, "mse": _squared,
    "rmse": _squared, "max_abs_error": _max_abs_error}
FIDELITY_METRICS: dict[str, Callable[[Planned, np.ndarray, np.ndarray], MetricValue]] = {
    "snr_db": _snr_db, "cosine": _cosine, "max_abs_diff": _max_abs_diff, "top1_agreement": _top1_agreement}


def compute_all(planned: list[Planned], outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                tasks: Mapping[str, OutputTask], original: Mapping[str, np.ndarray] | None) -> dict[str, MetricValue]:
    return {p.name: compute(p, outputs, targets, tasks, original) for p in planned
            if original is not None or p.metric.info.labels}
