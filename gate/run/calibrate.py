"""`gate calibrate`: the model against itself (A/A), to see how much each metric moves
when nothing changed, and to suggest regression limits that will not flake. It runs like
`gate check`: trust decided in the parent from the base branch, the model measured in the
limited worker."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gate.config.load import GateConfig
from gate.console import Progress
from gate.errors import ModelError
from gate.run.protocol import Job
from gate.run.stagelog import StageLog


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


def calibrate_config(config_path: str | Path, repeats: int, progress: Progress = lambda _: None, *,
                     show_progress: bool = True) -> Calibration:
    """The parent's side: the same config, trust decision and worker as `gate check`."""
    from gate.run.parent import execute, start

    log = StageLog(progress)
    cfg, trust = start(config_path, log)
    result = execute("calibrate", cfg, trust, log, show_progress=show_progress, repeats=repeats)
    return Calibration.from_dict(result["calibration"])


def calibrate(cfg: GateConfig, log: StageLog, job: Job) -> Calibration:
    """The worker's side: measure the candidate, then time it against itself."""
    from gate.run.candidate import measure
    from gate.verdict.abtest import compare_latency

    pr = measure(cfg, log, trust_model_code=job.trust_model_code)
    ratios, cis, seconds = [], [], 0.0
    x0 = pr.eval_split.first()
    for i in range(job.repeats):
        log.progress(f"A/A latency {i + 1}/{job.repeats}")
        v = compare_latency(pr.candidate.content, pr.candidate.content, x0, max_ratio=1.05,
                            threads=cfg.benchmark.threads, warmup=max(cfg.benchmark.warmup, 2), seed=i,
                            time_budget_s=5)
        if v.outcome == "not_judged":     # a model too slow for 5 s: the A/A comparison has no ratio
            raise ModelError(f"A/A latency {v.message()}", hint="calibrate times each A/A comparison for at most "
                             "5 s; this model needs longer per comparison")
        ratios.append(v.ratio)
        cis.append((v.ci_low, v.ci_high))
        seconds += v.seconds
    return Calibration(job.repeats, tuple(ratios), tuple(cis), seconds, len(pr.candidate.content), pr.eval_split.n,
                       pr.candidate_eval.accuracy.get(1))
