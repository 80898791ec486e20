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

from gate.config import GateConfig, config_summary, load_config
from gate.errors import EXIT_FAIL, EXIT_PASS, GateError, InternalError
from gate.native import native_stderr

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


def check(cfg: GateConfig, run: Run, *, trust_model_code: bool = False) -> tuple[str, int, str]:
    """Measure and judge. Fills run.parts; returns (status, exit code, summary)."""
    from gate.bench import benchmark
    from gate.convert import reference_spec, to_tflite
    from gate.data import check_fits, head, load_split, representative
    from gate.evaluate import evaluate_keras, evaluate_tflite
    from gate.judge import Measured, Measurements, Sizes, judge, verdict
    from gate.model import load_model
    from gate.report.build import tflite_sizes

    p = run.parts
    p["config"] = config_summary(cfg)
    p["policy"] = cfg.policy.to_dict() if cfg.policy else None
    ev_spec = cfg.evaluate
    ks = ev_spec.top_k
    with run.stage("load", f"loading {cfg.model_path.name}"):
        model = load_model(cfg.model_path, trust_model_code=trust_model_code)
        p["model"] = {**model.facts.to_dict(), "path": p["config"]["model"]}
    with run.stage("data", "reading data"):
        eval_split = head(load_split(cfg.eval_path, "eval"), ev_spec.max_examples)
        check_fits(eval_split, model.facts.input_shape, model.facts.n_classes)
        train = load_split(cfg.train_path, "train") if cfg.train_path else None
        if train is not None:
            check_fits(train, model.facts.input_shape, model.facts.n_classes)
        p["data"] = {s.name: s.facts() for s in (train, eval_split) if s is not None}

    stages = None
    if model.is_tflite:
        ref_bytes = cand_bytes = model.tflite
        ref_info = cand_info = {"quantization": "as committed", "io": model.facts.inputs[0].dtype}
        p["notes"].append("The committed model is a .tflite: it is measured as it is (no policy, no "
                          "reference conversion); reference and candidate are the same file.")
        if cfg.policy:
            p["notes"].append("policy is ignored for a committed .tflite")
    else:
        with run.stage("convert_reference", "converting the reference (float32 TFLite)"):
            ref = to_tflite(model.keras, reference_spec())
        policy = cfg.policy.policy
        spec = policy.convert
        optimized, stages = model.keras, None
        if policy.steps:
            with run.stage("optimize", f"optimizing: {' -> '.join(s.kind for s in policy.steps)}"):
                optimized, stages = optimize_model(model.keras, policy.steps, train, eval_split, ks,
                                                   ev_spec.batch_size, run.progress, trust_model_code)
        with run.stage("convert_candidate", f"converting the candidate ({spec.quantization.value})"):
            samples = representative(train, spec.representative_samples) if train is not None else None
            cand = to_tflite(optimized, spec, samples)
        ref_bytes, cand_bytes = ref.content, cand.content
        ref_info = {"quantization": ref.quantization, "io": ref.io, "convert_seconds": round(ref.seconds, 3)}
        cand_info = {"quantization": cand.quantization, "io": cand.io, "convert_seconds": round(cand.seconds, 3),
                     "calibration_samples": cand.calibration_samples}

    with run.stage("evaluate", f"scoring on {eval_split.n} eval examples"):
        x, y = eval_split.x, eval_split.y
        if model.is_tflite:
            original = evaluate_tflite(model.tflite, x, y, ks, ev_spec.batch_size, where=str(cfg.model_path))
            ref_eval = cand_eval = original
        else:
            original = evaluate_keras(model.keras, x, y, ks, ev_spec.batch_size)
            ref_eval = evaluate_tflite(ref_bytes, x, y, ks, ev_spec.batch_size, where="reference .tflite")
            cand_eval = evaluate_tflite(cand_bytes, x, y, ks, ev_spec.batch_size, where="candidate .tflite")
        p["original"] = original.to_dict()
    with run.stage("benchmark", "benchmarking reference and candidate (interleaved)"):
        models = {"candidate": cand_bytes} if model.is_tflite else {"reference": ref_bytes, "candidate": cand_bytes}
        bench = benchmark(models, x, cfg.benchmark)
        stats = bench.stats
        ref_lat, cand_lat = stats.get("reference", stats["candidate"]), stats["candidate"]
        p["benchmark"] = {"settings": bench.settings}
    p["reference"] = {"role": "reference", **ref_info, **tflite_sizes(ref_bytes),
                      "latency": ref_lat.to_dict(), "evaluation": ref_eval.to_dict()}
    run.artifacts[CANDIDATE_FILE] = cand_bytes
    p["candidate"] = {"role": "candidate", **cand_info, **tflite_sizes(cand_bytes), "file": CANDIDATE_FILE,
                      "latency": cand_lat.to_dict(), "evaluation": cand_eval.to_dict()}

    def measured(a: dict, ev, lat) -> Measured:
        return Measured(Sizes(a["bytes_raw"], a["bytes_gzip"]), lat.p50_ms, lat.p99_ms, ev.accuracy)

    m = Measurements(original.accuracy, measured(p["reference"], ref_eval, ref_lat),
                     measured(p["candidate"], cand_eval, cand_lat))
    checks = judge(cfg.thresholds, m)
    if not model.is_tflite and stages is not None:
        checks += finish_stages(p, stages, cand_bytes, cand_eval, policy.verify)
    p["checks"] = [c.to_dict() for c in checks]
    status = verdict(checks)
    failed = [c for c in checks if not c.passed]
    summary = (f"{len(checks)} check(s) passed." if not failed else
               f"{len(failed)} of {len(checks)} check(s) failed: " + "; ".join(c.message() for c in failed))
    return status, EXIT_PASS if status == "pass" else EXIT_FAIL, summary


def optimize_model(keras_model, steps, train, eval_split, ks, batch_size, progress, trust_model_code=False):
    """Run the policy's steps; each stage is measured (accuracy, float TFLite bytes)."""
    from gate.convert import reference_spec, to_tflite
    from gate.errors import ConfigError
    from gate.evaluate import evaluate_keras
    from gate.optimize import run as run_steps
    from gate.optimize.context import StepContext
    from gate.optimize.finetune import CompileInfo
    from gate.report.build import tflite_sizes

    if train is None:
        raise ConfigError("optimization steps fine-tune on the train split, but data.train is not set",
                          field="data.train")

    def measure(m, convertible: bool) -> dict:
        out = {"accuracy": evaluate_keras(m, eval_split.x, eval_split.y, ks, batch_size).to_dict(
            with_predictions=False)["accuracy"]}
        if convertible:
            sizes = tflite_sizes(to_tflite(m, reference_spec()).content)
            out.update(bytes_raw=sizes["bytes_raw"], bytes_gzip=sizes["bytes_gzip"])
        return out

    ctx = StepContext(train=train, compile_info=CompileInfo.of(keras_model), allow_custom_code=trust_model_code)
    return run_steps(keras_model, steps, ctx, measure, progress)


def finish_stages(parts: dict, stages, cand_bytes: bytes, cand_eval, verify_policy) -> list:
    """Add the converted row, verify stage by stage, record both; return failing checks
    when the policy says a lost property fails the gate."""
    from gate.judge import Check
    from gate.optimize.metrics import model_totals, tflite_layer_stats
    from gate.optimize.verify import verify
    from gate.report.build import tflite_sizes

    tfl = tflite_layer_stats(cand_bytes)
    focus = stages[-1].focus
    converted = {"name": "converted", "kind": "converted", "seconds": parts["timings_s"].get("convert_candidate", 0.0),
                 "params": None, "weights": model_totals(tfl, focus), "layers": {n: s.to_dict() for n, s in tfl.items()},
                 "selection": None, "notes": [],
                 "accuracy": {f"top{k}": v for k, v in cand_eval.accuracy.items()},
                 **{k: v for k, v in tflite_sizes(cand_bytes).items() if k != "sha256"}}
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
            checks.append(Check(f"verify.sparsity", f"'{f.layer}' sparsity at {f.stage}", f.now, limit, ">=", "",
                                False, f.achieved, f.message))
        else:
            limit = f.achieved + verify_policy.cluster_tolerance
            checks.append(Check(f"verify.clusters", f"'{f.layer}' unique values at {f.stage}", f.now, limit, "<=",
                                "values", False, f.achieved, f.message))
    return checks


def run(config_path: str | Path, out_dir: str | Path, progress: Progress = lambda _: None, *,
        in_process: bool = False, show_progress: bool = True) -> dict:
    """Run the gate and write report.json + report.md on every path. Returns the report.

    The model is measured in a worker process under limits (gate.isolate); `in_process`
    runs it here instead (debugging, profiling; never for untrusted models)."""
    from gate.report.build import finish
    from gate.report.write import write_artifacts, write_report

    r = Run(progress)
    try:
        cfg = load_config(config_path)
        from gate.trust import decide

        decision = decide(cfg)
        r.parts["trust"] = decision.to_dict()
        r.parts["notes"].extend(decision.notes)
        trust = decision.trust_model_code
        if in_process:
            status, code, summary = check(cfg, r, trust_model_code=trust)
        else:
            from gate.isolate import run_isolated

            r.parts["config"] = config_summary(cfg)
            status, code, summary = run_isolated(cfg.path, cfg.file.limits, progress=show_progress,
                                                 trust_model_code=trust, parts=r.parts, artifacts=r.artifacts)
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
