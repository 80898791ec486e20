"""`gate calibrate`, the worker's side: measure the candidate, then time it against itself
(A/A) to see how much latency moves when nothing changed."""
from __future__ import annotations

from gate.config.load import GateConfig
from gate.errors import ModelError
from gate.run.calibration import Calibration
from gate.run.protocol import Job
from gate.run.stagelog import StageLog


def calibrate(cfg: GateConfig, log: StageLog, job: Job) -> Calibration:
    """The worker's side: measure the candidate, then time it against itself."""
    from gate.run.worker.candidate import measure
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
