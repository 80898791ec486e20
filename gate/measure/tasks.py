"""What each output of a model does, inferred from the output and its targets (numpy only):

- classifier: two or more units (softmax or logits), integer class ids (or one-hot);
- binary: one unit with targets in {0, 1} (a sigmoid, or an unknown activation);
- regression: float targets, or a linear one-unit output (or several values per example).

Without targets the output's shape and activation decide (only fidelity metrics apply
then). The task picks the default metrics (gate.measure.scores.default_metrics).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from gate.measure.model import TensorSpec

TaskKind = Literal["classifier", "binary", "regression"]
LINEAR = ("linear", None)


@dataclass(frozen=True)
class OutputTask:
    output: str
    kind: TaskKind
    units: int               # values per example
    activation: str | None   # softmax | sigmoid | linear | ... when known

    @property
    def is_classes(self) -> bool:
        return self.kind in ("classifier", "binary")

    def to_dict(self) -> dict:
        return {"output": self.output, "kind": self.kind, "units": self.units, "activation": self.activation}


def units_of(spec: TensorSpec) -> int:
    dims = [d for d in spec.shape[1:] if d is not None]
    return int(np.prod(dims)) if dims else 1


def _integer_valued(y: np.ndarray) -> bool:
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return True
    return bool(np.isfinite(y).all() and (y == np.round(y)).all())


def _one_hot(y: np.ndarray) -> bool:
    return y.ndim == 2 and y.shape[1] > 1 and bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def infer_task(spec: TensorSpec, y: np.ndarray | None) -> OutputTask:
    units, act = units_of(spec), spec.activation
    one_axis = len(spec.shape) == 2          # (N, units): a classifier's shape
    if y is None:
        if units >= 2 and one_axis and act not in ("linear", "relu"):
            kind: TaskKind = "classifier"
        elif units == 1 and act == "sigmoid":
            kind = "binary"
        else:
            kind = "regression"
        return OutputTask(spec.name, kind, units, act)
    column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    if units >= 2 and one_axis and (_one_hot(y) or (column and _integer_valued(y))):
        kind = "classifier"
    elif units == 1 and column and act not in ("linear",) and _integer_valued(y) and np.isin(y, (0, 1)).all():
        kind = "binary"
    else:
        kind = "regression"
    return OutputTask(spec.name, kind, units, act)
