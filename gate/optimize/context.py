"""What a step gets and what it gives back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gate.measure.data import Split
from gate.optimize.finetune import CompileInfo


@dataclass(frozen=True)
class StepContext:
    train: Split
    compile_info: CompileInfo
    allow_custom_code: bool = False     # custom schedules: only when the base branch trusts code
    label: str = ""                      # "step 1/3 prune": progress lines of this step
    progress: Callable[[str], None] = field(default=lambda _line: None, repr=False, compare=False)
    plan: Any = None                     # gate.optimize.preflight.Plan of this step, when one was made
    x: Any = field(default=None, repr=False)   # train inputs as fit() takes them (gate.measure.evaluate.keras_feed)
    y: Any = field(default=None, repr=False)   # train targets: an array, or a list in output order

    @property
    def n(self) -> int:
        first = self.x if isinstance(self.x, np.ndarray) else (
            self.x[0] if isinstance(self.x, list) else next(iter(self.x.values())))
        return int(len(first))


@dataclass(frozen=True)
class StepOutput:
    model: Any                 # the next stage's model (wrappers stripped, except QAT's)
    selection: dict            # {"changed": [...], "skipped": [{"layer", "reason"}]}
    notes: list[str] = field(default_factory=list)


def stage_name(kind: str, index: int, kinds: list[str]) -> str:
    """A stage's name in the report: "pruned", or "pruned#2" when the kind repeats."""
    label = {"prune": "pruned", "cluster": "clustered", "qat": "qat", "structured_prune": "structured"}[kind]
    return label if kinds.count(kind) == 1 else f"{label}#{index + 1}"
