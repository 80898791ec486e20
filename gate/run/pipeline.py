"""The one flow: config -> load -> convert -> evaluate -> benchmark -> judge -> report.

Each stage is a call into one module that returns plain data. `run` never raises for
bad input: every exit path yields a report (errors included) and an exit code.
"""
from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from gate.config.load import GateConfig, config_summary, load_config
from gate.errors import EXIT_FAIL, EXIT_PASS, GateError, InternalError
from gate.console import native_stderr

Progress = Callable[[str], None]
CANDIDATE_FILE = "candidate.tflite"   # the optimized model, written next to the report


class Run:
    """Collects the report's parts stage by stage, so an error report keeps them."""

    def __init__(self, progress: Progress):
        self.parts: dict = {"timings_s": {}, "notes": []}
        self.artifacts: dict[str, bytes] = {}   # files written next to the report
        self.progress = progress
        self.on_stage: Callable[[str], None] = lambda _label: None  # the worker records where it is

    @contextmanager
    def stage(self, name: str, label: str) -> Iterator[None]:
        """Time a stage; TF's native log lines are kept off the terminal and added to
        the message of an error raised inside the stage."""
        self.progress(label)
        self.on_stage(label)
        start = time.perf_counter()
        try:
            with native_stderr() as native:
                yield
        except GateError as err:
            if native.text.strip() and not err.hint:
                err.hint = "TensorFlow said:\n" + native.tail(8)
            raise
        finally:
            self.parts["timings_s"][name] = round(time.perf_counter() - start, 3)


def check(cfg: GateConfig, run: Run, *, trust_model_code: bool = False, baseline: dict | None = None
          ) -> tuple[str, int, str]:
    """Measure and judge. Fills run.parts; returns (status, exit code, summary).

    `baseline` (from gate.run.baseline, made in the parent): {"config", "sha", "label",
    "unchanged", "trust_model_code"} or {"report": path}, or None."""
    from gate.measure.bench import benchmark
    from gate.verdict.compare import base_comparisons, policy_comparisons
    from gate.verdict.judge import Measured, Measurements, Sizes, judge, verdict
    from gate.measure.candidate import measure
    from gate.measure.proxies import proxies
    from gate.report.build import tflite_sizes

    p = run.parts
    p["config"] = config_summary(cfg)
    p["policy"] = cfg.policy.to_dict() if cfg.policy else None
    pr = measure(cfg, run, trust_model_code=trust_model_code, parts=p)
    p["notes"].extend(pr.notes)
    p["original"] = pr.original.to_dict()
    with run.stage("benchmark", "benchmarking reference and candidate (interleaved)"):
        models = {"candidate": pr.cand_bytes} if pr.is_tflite else {"reference": pr.ref_bytes,
                                                                    "candidate": pr.cand_bytes}
        bench = benchmark(models, pr.eval_split.x, cfg.benchmark)
        ref_lat, cand_lat = bench.stats.get("reference", bench.stats["candidate"]), bench.stats["candidate"]
        p["benchmark"] = {"settings": bench.settings}
    p["reference"] = {"role": "reference", **pr.ref_info, **tflite_sizes(pr.ref_bytes),
                      "latency": ref_lat.to_dict(), "evaluation": pr.ref_eval.to_dict()}
    run.artifacts[CANDIDATE_FILE] = pr.cand_bytes
    p["candidate"] = {"role": "candidate", **pr.cand_info, **tflite_sizes(pr.cand_bytes), "file": CANDIDATE_FILE,
                      "latency": cand_lat.to_dict(), "evaluation": pr.cand_eval.to_dict()}
    with run.stage("proxies", "counting parameters, MACs and memory"):
        p["reference"]["proxies"] = proxies(pr.ref_bytes, threads=cfg.benchmark.threads).to_dict()
        p["candidate"]["proxies"] = proxies(pr.cand_bytes, threads=cfg.benchmark.threads).to_dict()
    if pr.stages is not None:
        stage_checks = finish_stages(p, pr.stages, pr.cand_bytes, pr.cand_eval, pr.policy.verify)
    else:
        stage_checks = []
    t = cfg.thresholds
    stats = policy_comparisons(t, cfg.benchmark, pr, p["notes"])
    base = measure_baseline(baseline, cfg, pr, run, p["candidate"])
    if base is not None:
        with run.stage("compare_base", "comparing with the base branch's candidate"):
            versus = base_comparisons(t, cfg.benchmark, pr, base, p["candidate"])
        stats.update(versus)
        p["baseline"] = baseline_part(baseline, base, versus)
        if base.content is not None:
            p["baseline"]["candidate"]["proxies"] = (
                p["candidate"]["proxies"] if base.unchanged else
                proxies(base.content, threads=cfg.benchmark.threads).to_dict())
    elif _wants_base(t):
        p["notes"].append("no baseline to compare with: the regression limits (size.max_increase, "
                          "accuracy.max_drop_vs_base, latency.max_regression) were not judged")

    def measured(a: dict, ev, lat) -> Measured:
        return Measured(Sizes(a["bytes_raw"], a["bytes_gzip"]), lat.p50_ms, lat.p99_ms, ev.accuracy)

    base_proxies = (p.get("baseline") or {}).get("candidate", {}).get("proxies")
    m = Measurements(pr.original.accuracy, measured(p["reference"], pr.ref_eval, ref_lat),
                     measured(p["candidate"], pr.cand_eval, cand_lat), stats, p["candidate"]["proxies"], base_proxies)
    checks = judge(t, m) + stage_checks
    p["checks"] = [c.to_dict() for c in checks]
    status = verdict(checks)
    failed = [c for c in checks if not c.passed]
    summary = (f"{len(checks)} check(s) passed." if not failed else
               f"{len(failed)} of {len(checks)} check(s) failed: " + "; ".join(c.message() for c in failed))
    if base is not None and base.unchanged:
        summary += " Unchanged against the base branch."
    return status, EXIT_PASS if status == "pass" else EXIT_FAIL, summary


def _wants_base(t) -> bool:
    return bool(t.size or (t.accuracy and t.accuracy.max_drop_vs_base is not None)
                or (t.latency and t.latency.max_regression is not None))


def measure_baseline(job: dict | None, cfg: GateConfig, pr, run: Run, pr_sizes: dict):
    """The base branch's candidate: from its checked-out config (measured here, scored on
    the PR's eval examples when they fit), or from a baseline report."""
    from gate.verdict.compare import BaseSide, base_from_report
    from gate.errors import DataError
    from gate.measure.candidate import measure
    from gate.report.build import tflite_sizes

    if not job or job.get("missing"):
        return None
    ks, batch = cfg.evaluate.top_k, cfg.evaluate.batch_size
    if "report" in job:
        return base_from_report(Path(job["report"]), pr.eval_split, ks, batch)
    if job.get("unchanged"):  # the same bytes as the PR's candidate, already sized
        return BaseSide(job["sha"], job["label"], pr.cand_bytes, pr_sizes["bytes_raw"], pr_sizes["bytes_gzip"],
                        pr.cand_eval.accuracy, pr.cand_eval.predictions, True)
    base_cfg = load_config(job["config"])
    trust = bool(job.get("trust_model_code"))
    try:
        base = measure(base_cfg, run, trust_model_code=trust, label="base: ", eval_split=pr.eval_split)
        paired, notes = True, ()
    except DataError:
        base = measure(base_cfg, run, trust_model_code=trust, label="base: ")
        paired, notes = False, ("the base model does not fit the PR's eval data: it was scored on its own eval "
                                "split, so accuracy is compared as point estimates",)
    sizes = tflite_sizes(base.cand_bytes)
    return BaseSide(job["sha"], job["label"], base.cand_bytes, sizes["bytes_raw"], sizes["bytes_gzip"],
                    base.cand_eval.accuracy, base.cand_eval.predictions if paired else None, False, notes)


def baseline_part(job: dict, base, stats: dict) -> dict:
    return {"sha": base.sha, "chosen": base.label, "unchanged": base.unchanged,
            "fingerprint": job.get("fingerprint"), "notes": [*job.get("notes", []), *base.notes],
            "candidate": {"bytes_raw": base.bytes_raw, "bytes_gzip": base.bytes_gzip,
                          "accuracy": {f"top{k}": v for k, v in base.accuracy.items()},
                          "paired": base.predictions is not None},
            "comparison": {name: st.to_dict() for name, st in stats.items()}}


def finish_stages(parts: dict, stages, cand_bytes: bytes, cand_eval, verify_policy) -> list:
    """Add the converted row, verify stage by stage, record both; return failing checks
    when the policy says a lost property fails the gate."""
    from gate.verdict.judge import Check
    from gate.optimize.metrics import model_totals, tflite_layer_stats
    from gate.optimize.verify import verify

    tfl = tflite_layer_stats(cand_bytes)
    focus = stages[-1].focus
    converted = {"name": "converted", "kind": "converted", "seconds": parts["timings_s"].get("convert_candidate", 0.0),
                 "params": None, "weights": model_totals(tfl, focus), "layers": {n: s.to_dict() for n, s in tfl.items()},
                 "selection": None, "notes": [],
                 "accuracy": {f"top{k}": v for k, v in cand_eval.accuracy.items()},
                 "bytes_raw": parts["candidate"]["bytes_raw"], "bytes_gzip": parts["candidate"]["bytes_gzip"]}
    parts["stages"] = [s.to_dict() for s in stages] + [converted]
    seq = [(s.name, s.kind, s.layers) for s in stages] + [("converted", "converted", tfl)]
    findings = verify(seq, verify_policy)
    parts["verification"] = {"on_loss": verify_policy.on_loss, "findings": [f.to_dict() for f in findings]}
    if verify_policy.on_loss == "warn":
        parts["notes"].extend(f"verification: {f.message}" for f in findings)
        return []
    checks = []
    for f in findings:
        if f.what == "sparsity":
            limit = f.achieved - verify_policy.sparsity_tolerance
            checks.append(Check("verify.sparsity", f"'{f.layer}' sparsity at {f.stage}", f.now, limit, ">=", "",
                                False, f.achieved, f.message))
        else:
            limit = f.achieved + verify_policy.cluster_tolerance
            checks.append(Check("verify.clusters", f"'{f.layer}' unique values at {f.stage}", f.now, limit, "<=",
                                "values", False, f.achieved, f.message))
    return checks


@contextmanager
def baseline_job(cfg: GateConfig, parts: dict, *, ref: str | None, report: str | None,
                 enabled: bool) -> Iterator[dict | None]:
    """The baseline the worker measures against (see check()), its files checked out
    for the duration. Automatic baselines that cannot be had become a note; an explicit
    --baseline REF that cannot be had is an error."""
    from gate.run.baseline import checkout
    from gate.run.gitrepo import GitError

    if report:
        yield {"report": str(Path(report).resolve())}
        return
    if not enabled:
        yield None
        return
    try:
        with checkout(cfg, ref=ref) as base:
            if base is None:
                yield None
            elif base.config is None:
                parts["baseline"] = base.to_dict()
                parts["notes"].extend(base.notes)
                yield None
            else:
                yield {"config": str(base.config.path), "sha": base.ref.sha, "label": base.ref.label,
                       "unchanged": base.unchanged, "fingerprint": base.fingerprint,
                       "trust_model_code": base.config.file.trust_model_code,
                       "notes": [*base.ref.notes, *base.notes]}
    except GitError as err:
        if ref is not None:
            raise
        parts["notes"].append(f"no baseline: {err.message}")
        yield None


def run(config_path: str | Path, out_dir: str | Path, progress: Progress = lambda _: None, *,
        in_process: bool = False, show_progress: bool = True, baseline: str | None = None,
        baseline_report: str | None = None, compare_base: bool = True) -> dict:
    """Run the gate and write report.json + report.md on every path. Returns the report.

    The model is measured in a worker process under limits (gate.run.isolate); `in_process`
    runs it here instead (debugging, profiling; never for untrusted models)."""
    from gate.report.build import finish
    from gate.report.write import write_artifacts, write_report

    r = Run(progress)
    try:
        cfg = load_config(config_path)
        from gate.run.trust import decide

        decision = decide(cfg)
        r.parts["trust"] = decision.to_dict()
        r.parts["notes"].extend(decision.notes)
        trust = decision.trust_model_code
        r.parts["config"] = config_summary(cfg)
        with baseline_job(cfg, r.parts, ref=baseline, report=baseline_report, enabled=compare_base) as job:
            if in_process:
                status, code, summary = check(cfg, r, trust_model_code=trust, baseline=job)
            else:
                from gate.run.isolate import run_isolated

                status, code, summary = run_isolated(cfg.path, cfg.file.limits, progress=show_progress,
                                                     trust_model_code=trust, baseline=job, parts=r.parts,
                                                     artifacts=r.artifacts)
        report = finish(r.parts, status=status, exit_code=code, summary=summary)
        write_artifacts(r.artifacts, Path(out_dir))
    except GateError as err:
        report = finish(r.parts, status="error", exit_code=err.exit_code, summary=err.render(), error=err)
    except KeyboardInterrupt:
        err = InternalError("interrupted (Ctrl-C) before the gate finished")
        report = finish(r.parts, status="error", exit_code=130, summary=err.message, error=err)
        write_report(report, Path(out_dir))
        raise
    except Exception as exc:  # noqa: BLE001 - an internal error still gets a report
        err = InternalError(f"internal error: {type(exc).__name__}: {exc}",
                            hint="this is a model-gate bug; please report it with report.json")
        r.parts["notes"].append("traceback: " + "".join(traceback.format_exception(exc))[-4000:])
        report = finish(r.parts, status="error", exit_code=err.exit_code, summary=err.message, error=err)
    write_report(report, Path(out_dir))
    return report
