"""The base branch's candidate, measured in the worker for the comparison: from its
checked-out config (the same gate.measure code as the PR, scored on the PR's eval
examples so accuracy is paired), from a main-branch report, or the PR's own candidate
when nothing changed."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from gate.config.load import GateConfig
from gate.errors import BadInputError, DataError
from gate.measure.scores import MetricValue
from gate.measure.sizes import FileSizes
from gate.run.worker.cache import Cache
from gate.run.worker.cached import measure_cached
from gate.run.worker.candidate import Branch, MeasuredModel, threshold_metrics
from gate.run.protocol import CANDIDATE_FILE, BaseSource
from gate.run.stagelog import StageLog
from gate.verdict.evidence import Side


@dataclass(frozen=True)
class BaseMeasurement:
    """The base branch's candidate as the verdict compares with it (`side`)."""

    source: BaseSource
    side: Side
    label: str
    unchanged: bool
    notes: tuple[str, ...] = ()


def measure_base(source: BaseSource | None, cfg: GateConfig, pr: MeasuredModel, log: StageLog,
                 cache: Cache | None = None) -> BaseMeasurement | None:
    if source is None:
        return None
    if source.report is not None:
        return base_from_report(source, Path(source.report), pr, cfg)
    if source.unchanged:  # the same bytes as the PR's candidate, already measured
        side = Side(pr.candidate_eval.accuracy, pr.candidate_eval.predictions, pr.candidate_sizes,
                    pr.candidate.content, metrics=pr.candidate_eval.metrics)
        return BaseMeasurement(source, side, source.label, True)
    base_cfg = source.config   # validated by the parent (gate.run.parent.baseline.checkout): not parsed again
    wanted = tuple(threshold_metrics(cfg)) + tuple(cfg.evaluate.metrics or ())   # what the PR's rows look up
    try:
        base = measure_cached(base_cfg, log, cache, trust_model_code=source.trust_model_code, branch=Branch.BASE,
                              eval_split=pr.eval_split, extra_metrics=wanted)
        paired, notes = True, ()
    except DataError:
        base = measure_cached(base_cfg, log, cache, trust_model_code=source.trust_model_code, branch=Branch.BASE,
                              extra_metrics=wanted)
        paired, notes = False, ("the base model does not fit the PR's eval data: it was scored on its own eval "
                                "split, so accuracy is compared as point estimates",)
    metrics = base.candidate_eval.metrics if paired else {
        name: replace(m, per_example=None) for name, m in base.candidate_eval.metrics.items()}
    side = Side(base.candidate_eval.accuracy, base.candidate_eval.predictions if paired else None,
                base.candidate_sizes, base.candidate.content, metrics=metrics)
    return BaseMeasurement(source, side, source.label, False, notes)


def base_from_report(source: BaseSource, path: Path, pr: MeasuredModel, cfg: GateConfig) -> BaseMeasurement:
    """A main-branch run's report.json (and the candidate.tflite beside it, if any)."""
    from gate.measure.evaluate import evaluate_tflite
    from gate.report.load import read_report

    report_path = path / "report.json" if path.is_dir() else path
    report = read_report(report_path)
    cand = report.get("candidate")
    if not cand:
        raise BadInputError("the baseline report has no candidate (an error report?)", file=str(report_path))
    tfl = report_path.parent / (cand.get("file") or CANDIDATE_FILE)
    sizes = FileSizes(cand["bytes_raw"], cand["bytes_gzip"], cand["sha256"])
    content = tfl.read_bytes() if tfl.is_file() else None
    if content is not None and hashlib.sha256(content).hexdigest() == cand["sha256"]:
        ev = evaluate_tflite(content, pr.scoring, cfg.evaluate.batch_size, pr.facts.output_names,
                             original=pr.original.outputs, where=str(tfl), layers=pr.facts.output_layers)
        return BaseMeasurement(source, Side(ev.accuracy, ev.predictions, sizes, content, metrics=ev.metrics),
                               f"report {report_path}", False)
    accuracy = {int(k.removeprefix("top")): v for k, v in cand["evaluation"]["accuracy"].items()}
    metrics = {name: MetricValue(name, name.rsplit("/", 1)[-1], name.rpartition("/")[0], value)
               for name, value in (cand["evaluation"].get("metrics") or {}).items() if value is not None}
    return BaseMeasurement(source, Side(accuracy, None, sizes, metrics=metrics), f"report {report_path}", False,
                           ("the baseline report's candidate.tflite is missing or differs from its sha256: accuracy "
                            "is compared as reported, latency regression is not measured",))
