"""Metric names in gate.yml checked against the model's outputs as soon as they are known
(after the model and the data are read, before anything is converted or measured):

- a qualified name (`score/mae`) must name an output of the model;
- an unqualified label metric (`mae`, `accuracy`) on a model with several outputs must fit
  exactly one of them (by task kind), else it is ambiguous and must be qualified;
- an unqualified fidelity metric (`snr_db`, `cosine`, `max_abs_diff`, `top1_agreement`) on
  several outputs applies to every output it fits: the check is judged on each and holds
  only if it holds on all of them (gate.verdict.metric_outputs).

Each problem is a ConfigError (exit 2) naming gate.yml, the field and its line."""
from __future__ import annotations

from collections.abc import Mapping

from gate.config.metrics import parse_metric
from gate.errors import ConfigError
from gate.measure.tasks import OutputTask


def every_output(text: str, tasks: Mapping[str, OutputTask]) -> list[str]:
    """The outputs an unqualified fidelity metric applies to (empty: not such a metric)."""
    metric = parse_metric(text)
    if metric.output is not None or metric.info.labels or len(tasks) < 2:
        return []
    return [o for o, task in tasks.items() if task.kind in metric.info.tasks]


def problem(text: str, tasks: Mapping[str, OutputTask]) -> str | None:
    """Why a metric name cannot be used on a model with these outputs (None: it can)."""
    metric = parse_metric(text)
    outputs = list(tasks)
    if metric.output is not None:
        if metric.output not in tasks:
            return f"the model has no output '{metric.output}' (outputs: {', '.join(outputs)})"
        return None
    if len(outputs) < 2 or every_output(text, tasks):
        return None
    fits = [o for o in outputs if tasks[o].kind in metric.info.tasks]
    if len(fits) == 1:
        return None
    kinds = ", ".join(f"{o} ({tasks[o].kind})" for o in outputs)
    choices = " or ".join(f"{o}/{metric.metric}" for o in (fits or outputs))
    which = "fits none of them" if not fits else f"fits {len(fits)} of them"
    return (f"`{metric.metric}` needs its output named: the model has {len(outputs)} outputs ({kinds}) and "
            f"{metric.metric} {which}; write {choices}")


def check_metric_names(cfg, tasks: Mapping[str, OutputTask]) -> None:
    """Raise a ConfigError for the first threshold metric that cannot be used (cfg: GateConfig)."""
    for key in (cfg.thresholds.metrics or {}):
        why = problem(key, tasks)
        if why is not None:
            raise ConfigError(why, file=str(cfg.path), field=f"thresholds.metrics.{key}",
                              line=cfg.threshold_line(f"metrics.{key}"))
