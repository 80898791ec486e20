"""The `Target` protocol and what it returns (gate.measure.targets): kept apart from
`open_target` so that each target's module imports it without importing the package's
door (no import cycle)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from gate.config.schema import BenchmarkSpec
from gate.measure.bench import BenchResult
from gate.measure.targets.delegation import Delegation


@dataclass(frozen=True)
class Where:
    """What the figures were measured on."""

    kind: str                     # local | adb | ssh
    name: str                     # one line for humans: "runner CPU (...)", "Pixel 7 (arm64-v8a, Android 14)"
    facts: Mapping[str, str | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "facts": dict(self.facts)}


class Sampler(Protocol):
    settings: dict

    def rounds(self, count: int) -> np.ndarray:
        """`count` more interleaved rounds: cells[round, model, instance], nanoseconds."""


class Target(Protocol):
    where: Where

    def benchmark(self, models: dict[str, bytes], example: Mapping[str, np.ndarray],
                  spec: BenchmarkSpec) -> BenchResult: ...

    def sampler(self, baseline: bytes, candidate: bytes, example: Mapping[str, np.ndarray], *, threads: int,
                warmup: int, runs: int) -> Sampler | None: ...

    def delegation(self, name: str, content: bytes) -> Delegation | str: ...

    def outputs(self, name: str, content: bytes, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
