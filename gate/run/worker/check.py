"""`gate check` inside the worker: one call per stage, each returning a typed result, and
the run record's sections made from them as they come (gate.run.worker.sections), so an error
report keeps what finished."""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from gate.config.load import GateConfig, config_summary
from gate.errors import EXIT_FAIL, EXIT_PASS
from gate.measure.bench import BenchResult
from gate.measure.targets import Target, open_target
from gate.measure.proxies import Proxies
from gate.report.record import BenchmarkInfo
from gate.run.worker import sections
from gate.run.worker.base import BaseMeasurement, measure_base
from gate.run.worker.cache import DEFAULT_MAX_BYTES, Cache
from gate.run.worker.cached import measure_cached, proxies_cached
from gate.run.worker.candidate import MeasuredModel, quantizing
from gate.run.worker.on_target import on_device, on_target, record_delegation
from gate.run.protocol import CANDIDATE_FILE, BaseSource, Job, NoBaseReason, RunVerdict
from gate.run.stagelog import StageLog
from gate.verdict.check import UNJUDGED, Check, verdict
from gate.verdict.effect import effect_checks
from gate.verdict.evidence import Evidence, Side
from gate.verdict.latency_note import latency_agreement
from gate.verdict.registry import configured, judge
from gate.verdict.verification import verification_checks


def check(cfg: GateConfig, log: StageLog, job: Job) -> RunVerdict:
    log.keep(config=config_summary(cfg), policy=cfg.policy.to_dict() if cfg.policy else None)
    cache = open_cache(job)
    try:
        with ExitStack() as stack:
            with log.stage("target", "connecting to the benchmark target"):
                target = stack.enter_context(open_target(cfg.benchmark, cfg.root))
            log.keep(target=target.where.to_dict())
            return _check(cfg, log, job, cache, target)
    finally:
        if cache is not None:
            log.note(*cache.notes)


def open_cache(job: Job) -> Cache | None:
    if job.cache_dir is None:
        return None
    return Cache(Path(job.cache_dir), job.cache_max_bytes or DEFAULT_MAX_BYTES)


def _check(cfg: GateConfig, log: StageLog, job: Job, cache: Cache | None, target: Target) -> RunVerdict:
    pr = measure_cached(cfg, log, cache, trust_model_code=job.trust_model_code)
    log.note(*pr.notes)
    log.keep(original=pr.original.to_dict())
    if pr.bridge is not None:
        log.keep(bridge=pr.bridge.to_dict())
    bench = benchmark_models(pr, cfg, log, target)
    on_target(pr, cfg, log, target)
    ref_proxies, cand_proxies = measure_proxies(pr, cfg, log, cache)
    log.keep(**sections.artifacts(pr, bench, ref_proxies, cand_proxies, CANDIDATE_FILE))
    log.artifacts[CANDIDATE_FILE] = pr.candidate.content
    stage_checks = verify_stages(pr, log)
    base = measure_base(job.baseline if isinstance(job.baseline, BaseSource) else None, cfg, pr, log, cache)
    no_base = job.baseline if isinstance(job.baseline, NoBaseReason) else None
    if base is not None:
        base = with_proxies(base, pr, cand_proxies, cfg, log, cache)
    with log.stage("judge", "judging the thresholds" + (" (and against the base branch)" if base else "")):
        ev = on_device(evidence(pr, bench, ref_proxies, cand_proxies, base, no_base, cfg), target, cfg)
        checks = judge(cfg.thresholds, ev, cfg.threshold_line) + stage_checks
        checks += effect_checks(pr.reference.content, pr.candidate.content, quantizing(pr.policy and pr.policy.convert,
                                                                                      pr.candidate))
    record_delegation(pr, target, cfg, log)
    note = latency_agreement(bench, checks) if target.where.kind == "local" else None
    if note:
        log.note(note)
    if base is not None:
        base_rows = set(configured(cfg.thresholds, needs_base=True))
        log.keep(baseline=sections.baseline(base, [c for c in checks if c.name in base_rows]))
    log.keep(checks=checks)
    return run_verdict(checks, base)


def benchmark_models(pr: MeasuredModel, cfg: GateConfig, log: StageLog, target: Target) -> BenchResult:
    where = "" if target.where.kind == "local" else f" on {target.where.name}"   # the runner: said in the table
    with log.stage("benchmark", f"benchmarking reference and candidate (interleaved){where}"):
        same = pr.same_file     # a committed .tflite measured as it is
        models = {"candidate": pr.candidate.content} if same else {
            "reference": pr.reference.content, "candidate": pr.candidate.content}
        result = target.benchmark(models, pr.eval_split.first(), cfg.benchmark)
    log.keep(benchmark=BenchmarkInfo(settings=result.settings))
    return result


def measure_proxies(pr: MeasuredModel, cfg: GateConfig, log: StageLog,
                    cache: Cache | None) -> tuple[Proxies, Proxies]:
    threads = cfg.benchmark.threads
    with log.stage("proxies", "counting parameters, MACs and memory"):
        ref = proxies_cached(pr.reference.content, pr.reference_sizes.sha256, threads, cache)
        cand = ref if pr.same_file else proxies_cached(pr.candidate.content, pr.candidate_sizes.sha256, threads,
                                                       cache)
    return ref, cand


def verify_stages(pr: MeasuredModel, log: StageLog) -> list[Check]:
    """Add the converted row to the optimization stages, verify stage by stage (did a later
    stage lose an earlier one's sparsity or clusters?), record both."""
    if pr.stages is None:
        return []
    from gate.optimize.metrics import tflite_layer_stats
    from gate.optimize.verify import verify

    converted = tflite_layer_stats(pr.candidate.content)
    seq = [(s.name, s.kind, s.layers) for s in pr.stages] + [("converted", "converted", converted)]
    findings = verify(seq, pr.policy.verify)
    log.keep(**sections.stages(pr, converted, log.record.timings_s.get("convert_candidate", 0.0), findings))
    if pr.policy.verify.on_loss == "warn":
        log.note(*(f"verification: {f.message}" for f in findings))
    return verification_checks(findings, pr.policy.verify)


def with_proxies(base: BaseMeasurement, pr: MeasuredModel, cand_proxies: Proxies, cfg: GateConfig, log: StageLog,
                 cache: Cache | None) -> BaseMeasurement:
    if base.side.content is None:
        return base
    if base.unchanged:
        figures = cand_proxies
    else:
        with log.stage("base_proxies", "base: counting parameters, MACs and memory"):
            figures = proxies_cached(base.side.content, base.side.sizes.sha256, cfg.benchmark.threads, cache)
    return replace(base, side=replace(base.side, proxies=figures.to_dict()))


def evidence(pr: MeasuredModel, bench: BenchResult, ref_proxies: Proxies, cand_proxies: Proxies,
             base: BaseMeasurement | None, no_base: NoBaseReason | None, cfg: GateConfig) -> Evidence:
    cand_latency = bench.stats["candidate"]
    primary = pr.original.primary
    return Evidence(
        original=Side(pr.original.accuracy, pr.original.predictions, metrics=pr.original.metrics),
        reference=Side(pr.reference_eval.accuracy, pr.reference_eval.predictions, pr.reference_sizes,
                       pr.reference.content, bench.stats.get("reference", cand_latency), ref_proxies.to_dict(),
                       pr.reference_eval.metrics),
        candidate=Side(pr.candidate_eval.accuracy, pr.candidate_eval.predictions, pr.candidate_sizes,
                       pr.candidate.content, cand_latency, cand_proxies.to_dict(), pr.candidate_eval.metrics),
        labels=pr.eval_split.y.get(primary) if primary else None, example=pr.eval_split.first(),
        bench=cfg.benchmark, base=None if base is None else base.side, base_unchanged=bool(base and base.unchanged),
        no_base=None if no_base is None else (no_base.kind, no_base.reason), tasks=pr.eval_split.tasks,
        float_reference=pr.float_reference, reference_label=pr.reference_label)


def run_verdict(checks: list[Check], base: BaseMeasurement | None) -> RunVerdict:
    """The verdict and its one line. A pass says what it rests on: how many checks were
    judged, which did not apply, which were not judged; never a bare "0 checks passed"."""
    status = verdict(checks)
    failed = [c for c in checks if not c.passed]
    judged = [c for c in checks if c.outcome not in UNJUDGED]
    passed_unjudged = [c for c in checks if c.outcome in UNJUDGED and c.passed]
    if failed:
        summary = f"{len(failed)} of {len(checks)} check(s) failed: " + "; ".join(c.message for c in failed)
    elif not checks:
        summary = "No thresholds configured: nothing was judged (set thresholds in gate.yml)."
    elif not judged:
        summary = "Nothing was judged: " + "; ".join(c.message for c in checks) + "."
    else:
        summary = f"{len(judged)} check(s) passed."
    if passed_unjudged and judged and not failed:
        summary += " " + "; ".join(c.message for c in passed_unjudged) + "."
    if base is not None and base.unchanged:
        summary += " Unchanged against the base branch."
    return RunVerdict(status=status, exit_code=EXIT_PASS if status == "pass" else EXIT_FAIL, summary=summary)
