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

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gate.config.metrics import FIDELITY, MetricName, parse_metric
from gate.measure.tasks import Task

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


def resolve(text: str, tasks: Mapping[str, Task]) -> tuple[str, str | None, MetricName, str]:
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


def default_metrics(task: Task, has_targets: bool, ks: list[int]) -> list[str]:
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


def plan(configured: list[str] | None, extra: list[str], tasks: Mapping[str, Task], targets: set[str],
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
            tasks: Mapping[str, Task], original: Mapping[str, np.ndarray] | None) -> MetricValue:
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
        return _fidelity(p, metric, out, original[p.output], task)
    if p.output not in targets:
        return missing(f"no targets for output '{p.output}' in the eval data "
                       f"({'y' if len(tasks) == 1 else 'y.' + p.output})")
    y = targets[p.output]
    n = len(y)
    if metric == "accuracy" or p.metric.k is not None:
        correct = top_k_correct(out, y, p.metric.k or 1)
        return MetricValue(p.name, metric, p.output, float(correct.mean()), correct.astype(np.float64))
    if metric == "binary_accuracy":
        correct = (_flat(out)[:, 0] > 0.5).astype(np.int64) == y
        return MetricValue(p.name, metric, p.output, float(correct.mean()), correct.astype(np.float64))
    if metric == "auc":
        value = _auc(_flat(out)[:, 0], y)
        return MetricValue(p.name, metric, p.output, value, None, "" if value is not None else
                           "auc needs examples of both classes in the eval targets")
    err = _flat(out) - np.asarray(y, dtype=np.float64).reshape(n, -1)
    if metric == "mae":
        per = np.abs(err).mean(axis=1)
        return MetricValue(p.name, metric, p.output, float(per.mean()), per)
    if metric in ("mse", "rmse"):
        per = (err ** 2).mean(axis=1)
        value = float(per.mean()) if metric == "mse" else float(np.sqrt(per.mean()))
        return MetricValue(p.name, metric, p.output, value, per)
    if metric == "max_abs_error":
        return MetricValue(p.name, metric, p.output, float(np.abs(err).max()))
    return missing(f"{metric} is not computed for output '{p.output}'")


def _fidelity(p: Planned, metric: str, out: np.ndarray, ref: np.ndarray, task: Task) -> MetricValue:
    a, b = _flat(ref), _flat(out)
    if metric == "snr_db":
        noise = float(((a - b) ** 2).sum())
        signal = float((a ** 2).sum())
        value = SNR_CAP_DB if noise == 0 else (-SNR_CAP_DB if signal == 0 else 10 * np.log10(signal / noise))
        return MetricValue(p.name, metric, p.output, float(min(value, SNR_CAP_DB)))
    if metric == "cosine":
        if a.shape[1] == 1:     # one value per example: the cosine of the outputs over the examples
            a, b = a.T, b.T
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        both = (na == 0) & (nb == 0)
        per = np.where(both, 1.0, (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300))
        return MetricValue(p.name, metric, p.output, float(per.mean()), per if per.size == len(ref) else None)
    if metric == "max_abs_diff":
        return MetricValue(p.name, metric, p.output, float(np.abs(a - b).max()))
    agree = (top1(out) == top1(ref)).astype(np.float64)
    return MetricValue(p.name, metric, p.output, float(agree.mean()), agree)


def compute_all(planned: list[Planned], outputs: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                tasks: Mapping[str, Task], original: Mapping[str, np.ndarray] | None) -> dict[str, MetricValue]:
    return {p.name: compute(p, outputs, targets, tasks, original) for p in planned
            if original is not None or p.metric.info.labels}
