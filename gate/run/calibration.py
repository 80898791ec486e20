"""What `gate calibrate` found: the model timed against itself (A/A), and the regression
limits it suggests with room above that noise. Written by the worker
(gate.run.worker.calibrate), read by the parent (gate.run.parent.calibrate)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    repeats: int
    latency_ratios: tuple[float, ...]
    latency_ci: tuple[tuple[float, float], ...]
    latency_seconds: float
    size_bytes: int
    eval_examples: int
    accuracy: float | None       # None: the model has no classifier output

    @property
    def latency_noise(self) -> float:
        """The largest A/A deviation from 1, including the intervals' far ends."""
        ends = [abs(x - 1) for pair in self.latency_ci for x in pair] + [abs(r - 1) for r in self.latency_ratios]
        return max(ends) if ends else 0.0

    def suggestions(self) -> dict:
        """Limits with room above the observed noise (rounded up to whole percent)."""
        latency = max(0.02, math.ceil(round(200 * self.latency_noise, 6)) / 100)   # twice the worst A/A end
        one_example = 1 / self.eval_examples
        accuracy = round(max(0.005, 2 * one_example), 4)                 # two examples of slack
        out: dict = {"size": {"max_increase": "1%"}}
        if self.accuracy is not None:
            out["accuracy"] = {"max_drop_vs_base": accuracy, "mode": "ci" if self.eval_examples >= 1000 else "point"}
        out["latency"] = {"max_regression": f"{round(100 * latency)}%"}
        return out

    def to_dict(self) -> dict:
        return {"repeats": self.repeats, "latency_ratios": list(self.latency_ratios),
                "latency_ci": [list(c) for c in self.latency_ci], "latency_noise": self.latency_noise,
                "latency_seconds": self.latency_seconds,
                "size_bytes": self.size_bytes, "eval_examples": self.eval_examples, "accuracy": self.accuracy,
                "suggested_thresholds": self.suggestions()}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(int(d["repeats"]), tuple(d["latency_ratios"]), tuple(tuple(c) for c in d["latency_ci"]),
                   float(d["latency_seconds"]), int(d["size_bytes"]), int(d["eval_examples"]),
                   None if d["accuracy"] is None else float(d["accuracy"]))
