"""Comparisons judged with statistics: the candidate against the original model and the
float32 reference (what the policy does), and against the base branch's candidate (what
the pull request does). Latency: interleaved A/B with a bootstrap interval (gate.verdict.abtest).
Accuracy: paired per example, McNemar and a bootstrap interval (gate.verdict.stats)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gate.config.schema import BenchmarkSpec, Thresholds


@dataclass(frozen=True)
class Stat:
    """A judged comparison: the point value, its interval, the outcome and why."""

    value: float
    low: float | None
    high: float | None
    passed: bool
    outcome: str          # pass | fail | inconclusive | unchanged | point
    detail: str
    rounds: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BaseSide:
    """The base branch's candidate, as measured in this run."""

    sha: str | None
    label: str
    content: bytes | None
    bytes_raw: int
    bytes_gzip: int
    accuracy: dict[int, float]
    predictions: tuple[int, ...] | None   # on the PR's eval examples (None: not paired)
    unchanged: bool
    notes: tuple[str, ...] = ()


def accuracy_stat(base_pred, cand_pred, labels, *, max_drop: float, mode: str, confidence: float) -> Stat:
    from gate.verdict.stats import accuracy_drop, correctness

    cmp = accuracy_drop(correctness(base_pred, labels), correctness(cand_pred, labels), max_drop=max_drop,
                        mode=mode, confidence=confidence)
    return Stat(cmp.drop, cmp.ci_low, cmp.ci_high, cmp.passed, mode, cmp.explanation)


def point_drop(base_acc: float, cand_acc: float, max_drop: float, why: str) -> Stat:
    drop = base_acc - cand_acc
    return Stat(drop, None, None, drop <= max_drop + 1e-12, "point", why)


def latency_stat(baseline: bytes, candidate: bytes, example: np.ndarray, *, max_ratio: float, bench: BenchmarkSpec,
                 confidence: float, time_budget_s: float, inconclusive: str) -> Stat:
    from gate.verdict.abtest import compare_latency

    v = compare_latency(baseline, candidate, example[:1], max_ratio=max_ratio, threads=bench.threads,
                        warmup=max(bench.warmup, 2), confidence=confidence, time_budget_s=time_budget_s,
                        inconclusive=inconclusive)
    return Stat(v.ratio, v.ci_low, v.ci_high, v.passed, v.outcome, v.message(), v.rounds)


def policy_comparisons(t: Thresholds, bench: BenchmarkSpec, pr, top_k_note: list[str]) -> dict[str, Stat]:
    """What the policy does: candidate vs original (accuracy) and vs float32 (latency)."""
    out: dict[str, Stat] = {}
    acc = t.accuracy
    if acc and acc.max_drop is not None:
        y = pr.eval_split.y
        if acc.top_k == 1:
            out["accuracy.max_drop"] = accuracy_stat(pr.original.predictions, pr.cand_eval.predictions, y,
                                                     max_drop=acc.max_drop, mode=acc.mode, confidence=acc.confidence)
        else:
            top_k_note.append(f"accuracy.max_drop on top-{acc.top_k} is judged on the point estimate "
                              "(per-example statistics are top-1)")
            out["accuracy.max_drop"] = point_drop(pr.original.top(acc.top_k), pr.cand_eval.top(acc.top_k),
                                                  acc.max_drop, "point estimate")
    lat = t.latency
    if lat and lat.max_ratio is not None:
        out["latency.max_ratio"] = latency_stat(pr.ref_bytes, pr.cand_bytes, pr.eval_split.x, max_ratio=lat.max_ratio,
                                                bench=bench, confidence=lat.confidence,
                                                time_budget_s=lat.time_budget_s, inconclusive=lat.inconclusive)
    return out


def base_comparisons(t: Thresholds, bench: BenchmarkSpec, pr, base: BaseSide, pr_sizes: dict) -> dict[str, Stat]:
    """What the pull request does: its candidate vs the base branch's candidate."""
    out: dict[str, Stat] = {}
    same = "unchanged against the base (same model, data and policy hashes): not measured again"
    if t.size is not None:
        measure = t.size.measure.value
        mine = pr_sizes["bytes_raw" if measure == "raw" else "bytes_gzip"]
        theirs = base.bytes_raw if measure == "raw" else base.bytes_gzip
        growth = (mine - theirs) / theirs if theirs else 0.0
        out["size.max_increase"] = Stat(growth, None, None, growth <= t.size.max_increase + 1e-12, "point",
                                        f"{mine:,} vs {theirs:,} bytes ({measure})")
    acc = t.accuracy
    if acc and acc.max_drop_vs_base is not None:
        if base.unchanged:
            out["accuracy.max_drop_vs_base"] = Stat(0.0, 0.0, 0.0, True, "unchanged", same)
        elif base.predictions is not None and acc.top_k == 1:
            out["accuracy.max_drop_vs_base"] = accuracy_stat(base.predictions, pr.cand_eval.predictions,
                                                             pr.eval_split.y, max_drop=acc.max_drop_vs_base,
                                                             mode=acc.mode, confidence=acc.confidence)
        else:
            out["accuracy.max_drop_vs_base"] = point_drop(base.accuracy[acc.top_k], pr.cand_eval.top(acc.top_k),
                                                          acc.max_drop_vs_base,
                                                          "point estimate: not scored on the same examples")
    lat = t.latency
    if lat and lat.max_regression is not None:
        limit = 1 + lat.max_regression
        if base.unchanged:
            out["latency.max_regression"] = Stat(1.0, 1.0, 1.0, True, "unchanged", same)
        elif base.content is not None:
            out["latency.max_regression"] = latency_stat(base.content, pr.cand_bytes, pr.eval_split.x,
                                                         max_ratio=limit, bench=bench, confidence=lat.confidence,
                                                         time_budget_s=lat.time_budget_s,
                                                         inconclusive=lat.inconclusive)
    return out


def base_from_report(path: Path, pr_eval, ks: list[int], batch: int) -> BaseSide:
    """A main-branch run's report.json (and the candidate.tflite beside it, if any)."""
    from gate.errors import BadInputError
    from gate.measure.evaluate import evaluate_tflite
    from gate.report.load import read_report

    report_path = path / "report.json" if path.is_dir() else path
    report = read_report(report_path)
    cand = report.get("candidate")
    if not cand:
        raise BadInputError("the baseline report has no candidate (an error report?)", file=str(report_path))
    tfl = report_path.parent / (cand.get("file") or "candidate.tflite")
    notes = []
    if tfl.is_file() and hashlib.sha256(tfl.read_bytes()).hexdigest() == cand["sha256"]:
        content = tfl.read_bytes()
        ev = evaluate_tflite(content, pr_eval.x, pr_eval.y, ks, batch, where=str(tfl))
        accuracy, predictions = ev.accuracy, ev.predictions
    else:
        content, predictions = None, None
        accuracy = {int(k.removeprefix("top")): v for k, v in cand["evaluation"]["accuracy"].items()}
        notes.append("the baseline report's candidate.tflite is missing or differs from its sha256: accuracy is "
                     "compared as reported, latency regression is not measured")
    return BaseSide(None, f"report {report_path}", content, cand["bytes_raw"], cand["bytes_gzip"], accuracy,
                    predictions, False, tuple(notes))
