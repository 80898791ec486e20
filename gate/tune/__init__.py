"""`gate tune`: find the smallest (or fastest) policy that passes gate.yml's thresholds.

    tune(config, out_dir, budget_minutes=..., objective="size") -> TuneResult

Parent side (no TensorFlow): the user's config and trust decision are read once
(gate.run.parent.start); trial 1 is the policy gate.yml names (bad input there ends the
tune with exit 2, as `gate check` would); then gate.tune.search orders and prunes the
candidates (gate.tune.space), each measured by `gate check`'s own code (gate.tune.trial);
gate.tune.outputs writes policy.yml, tune.json, tune.md and pareto.png.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gate.errors import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_PASS, ConfigError, PolicyError
from gate.tune.search import Objective, Search
from gate.tune.trial import RunTrial, Trial


@dataclass(frozen=True)
class TuneResult:
    exit_code: int
    summary: str
    winner: Trial | None
    closest: Trial | None
    search: Search
    files: dict[str, str]


def check_inputs(cfg, budget_minutes: float) -> None:
    """Bad input ends the tune before any trial: exit 2 naming the field."""
    from gate.verdict.registry import configured

    if not budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be more than 0; received {budget_minutes}",
                          field="--budget-minutes", hint="e.g. --budget-minutes 20")
    judged = configured(cfg.thresholds, needs_base=False)
    if not judged:
        base_only = configured(cfg.thresholds, needs_base=True)
        got = (f"only limits against the base branch ({', '.join(base_only)}), which a tune does not compare"
               if base_only else "none")
        raise ConfigError(f"gate tune searches for a policy that passes gate.yml's thresholds; received {got}",
                          file=str(cfg.path), field="thresholds",
                          hint="set at least one limit a single run can judge, e.g. thresholds: {accuracy: "
                               "{max_drop: 0.01}, compression: {min: 4}}")


def closest(trials: list[Trial]) -> Trial | None:
    """The failing trial nearest to passing: fewest failed checks, then smallest drop."""
    judged = [t for t in trials if t.status == "fail"]
    if not judged:
        return None
    return min(judged, key=lambda t: (len(t.failed_checks), t.accuracy_drop if t.accuracy_drop is not None
                                      else float("inf"), t.bytes_gzip or float("inf")))


def tune(config_path: str | Path, out_dir: str | Path, *, budget_minutes: float, objective: Objective = "size",
         write: str | Path | None = None, cache_dir: str | Path | None = ".gate-cache",
         progress: Callable[[str], None] = lambda _line: None, in_process: bool = False,
         run_trial: RunTrial | None = None, sensitivity: bool = True) -> TuneResult:
    """Search, write the outputs, return the verdict. `run_trial` replaces the real trial
    runner (tests fake the measurement boundary with it)."""
    from gate.config.schema import ConvertSpec
    from gate.formats import format_of
    from gate.run.parent.run import execute, start, usable_cache_dir
    from gate.run.stagelog import StageLog
    from gate.tune import outputs
    from gate.tune.trial import gate_runner

    out = Path(out_dir)
    log = StageLog(lambda _line: None)
    cfg, trust = start(config_path, log)
    check_inputs(cfg, budget_minutes)
    out.mkdir(parents=True, exist_ok=True)
    cache = usable_cache_dir(cache_dir, cfg, log)
    runner = run_trial or gate_runner(Path(config_path), out, trust, cache, in_process)

    def measure_sensitivity() -> dict:
        slog = StageLog(lambda _line: None)
        result = execute("sensitivity", cfg, trust, slog, in_process=in_process, show_progress=False,
                         cache_dir=cache)
        if result.status == "error" or result.sensitivity is None:
            return {"layers": {}, "error": result.summary}
        return result.sensitivity

    acc = cfg.thresholds.accuracy
    search = Search(objective, budget_minutes * 60, runner,
                    measure_sensitivity if sensitivity and run_trial is None else None,
                    is_tflite=format_of(cfg.model_path) == "tflite",
                    has_keep_float="keep_float" in ConvertSpec.model_fields,
                    max_drop=acc.max_drop if acc else None, progress=progress)
    configured = configured_trial(cfg)
    if configured is not None:
        search.start = search.clock()
        first = search.try_one(configured)
        bad = _bad_input(first)
        if bad is not None:
            field = bad.get("field") or ""
            raise PolicyError(f"the policy in gate.yml is bad input ({first.name}): {bad.get('message')}",
                              file=str(cfg.path), field=field if field.startswith("policy") else
                              "policy" + (f".{field}" if field else ""), hint=bad.get("hint"))
    try:
        winner = search.run()
    except BaseException:           # Ctrl-C or a bug: keep what was measured, then stop
        outputs.write_all(out, search, None, closest(search.trials), "interrupted: see the trials so far", cfg,
                          None)
        raise
    near = None if winner else closest(search.trials)
    if winner is not None:
        summary = (f"found: {winner.name} — {winner.bytes_gzip:,} B gzip "
                   f"({winner.compression or 0:.2f}x vs float32), "
                   f"accuracy drop {_pts(winner.accuracy_drop)}, latency {winner.latency_ratio or 0:.2f}x; "
                   f"{len(search.trials)} trial(s) in {search.elapsed() / 60:.1f} min")
    else:
        summary = (f"no policy passed within {budget_minutes:g} min ({len(search.trials)} trial(s))"
                   + (f"; closest: {near.name} ({'; '.join(near.failed)[:300]})" if near else ""))
    files = outputs.write_all(out, search, winner, near, summary, cfg, write)
    return TuneResult(EXIT_PASS if winner else EXIT_FAIL, summary, winner, near, search, files)


def configured_trial(cfg):
    """The policy gate.yml names, as trial 1 (what the user has now)."""
    from gate.config.policies import policy_data
    from gate.tune.space import Candidate

    if cfg.policy is None:
        return None
    from gate.config.policies import looks_like_preset, preset_names

    name = cfg.policy.name if looks_like_preset(cfg.policy.name) and cfg.policy.name in preset_names() else "policy"
    return Candidate(f"gate.yml-{name}", "configured", policy_data(cfg.policy.policy))


def _bad_input(trial: Trial | None) -> dict | None:
    """The error of a trial that ended in bad input (exit 2), from its report."""
    import json

    if trial is None or trial.status != "error" or not trial.report:
        return None
    report = json.loads(Path(trial.report).read_text(encoding="utf-8"))
    if report.get("exit_code") != EXIT_BAD_INPUT:
        return None
    return report.get("error") or {"message": report.get("summary")}


def _pts(drop: float | None) -> str:
    return "-" if drop is None else f"{100 * drop:+.2f} pts"
