"""What a step gets and what it gives back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gate.measure.data import Split
from gate.optimize.finetune import CompileInfo


@dataclass(frozen=True)
class StepContext:
    train: Split
    compile_info: CompileInfo
    allow_custom_code: bool = False     # custom schedules: only when the base branch trusts code


@dataclass(frozen=True)
class StepOutput:
    model: Any                 # the next stage's model (wrappers stripped, except QAT's)
    selection: dict            # {"changed": [...], "skipped": [{"layer", "reason"}]}
    notes: list[str] = field(default_factory=list)
