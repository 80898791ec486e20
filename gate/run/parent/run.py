"""The parent process of every command that touches a model (`gate check`, `gate calibrate`,
`gate action`). No TensorFlow here: it reads gate.yml, decides trust from the base branch
(gate.run.parent.trust), checks out the base for the comparison (gate.run.parent.baseline), hands one
Job to the worker (gate.run.parent.isolate -> gate.run.worker.main) and writes the report on every
exit path: pass, fail, bad input, a crashed worker, an internal error, Ctrl-C."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gate.config.load import GateConfig, config_summary, load_config
from gate.console import Progress
from gate.errors import GateError, InternalError
from gate.run.protocol import BaseSource, Job, JobKind, NoBaseReason, WorkerResult
from gate.run.stagelog import StageLog


def start(config_path: str | Path, log: StageLog, policy: str | None = None, *,
          model: str | None = None, target: str | None = None) -> tuple[GateConfig, bool]:
    """Read gate.yml (the one parse of the run: the worker gets the validated config in its
    Job; `model`: one entry of its `models:`; benchmark.target overridden by `target`,
    `gate check --target local`) and decide trust_model_code (a pull request cannot grant
    itself trust)."""
    from gate.config.load import with_target
    from gate.run.parent.trust import decide

    cfg = with_target(load_config(config_path, model, policy=policy), target)
    if policy is not None:
        log.note(f"policy {cfg.policy.name if cfg.policy else policy} from --policy (instead of gate.yml's)")
    decision = decide(cfg)
    log.keep(trust=decision.to_dict(), config=config_summary(cfg))
    log.note(*decision.notes)
    check_sources(cfg, decision.trust_model_code)
    return cfg, decision.trust_model_code


def check_sources(cfg: GateConfig, trusted: bool) -> None:
    """What can be checked of data.train / data.eval before the worker imports TF (folders,
    image headers, CSV columns, TFRecord features, a loader's trust): exit 2 early."""
    from gate.measure.sources import check

    for ref in (cfg.train_source, cfg.eval_source):
        if ref is not None:
            check(ref, trusted)


def execute(kind: JobKind, cfg: GateConfig, trust: bool, log: StageLog, *, in_process: bool = False,
            show_progress: bool = True, baseline: BaseSource | NoBaseReason | None = None, repeats: int = 0,
            cache_dir: str | Path | None = None) -> WorkerResult:
    """Run a job in the worker under the config's limits (or here, for debugging); the
    worker's record and files land in `log`. Returns the worker's result."""
    usable_cache = usable_cache_dir(cache_dir, cfg, log)     # may add a note: before the record is sent
    job = Job(kind=kind, config=cfg, trust_model_code=trust, progress=show_progress, baseline=baseline,
              record=log.record, repeats=repeats, cache_dir=usable_cache)
    from gate.run.parent.isolate import run_in_process, run_isolated

    return run_in_process(job, log) if in_process else run_isolated(job, cfg.file.limits, log)


def run_gate(config_path: str | Path, out_dir: str | Path, progress: Progress = lambda _: None, *,
             in_process: bool = False, show_progress: bool = True, baseline: str | None = None,
             baseline_report: str | None = None, compare_base: bool = True,
             cache_dir: str | Path | None = None, policy: str | None = None,
             model: str | None = None, target: str | None = None) -> dict:
    """`gate check`: run the gate (on `model`, an entry of gate.yml's `models:`) and write
    report.json + report.md on every path. Returns
    the report. `in_process` measures here instead of in the limited worker (debugging,
    profiling; never for untrusted models); `cache_dir` (None: no cache) keeps measured
    models for re-runs (gate.run.worker.cache)."""
    from gate.report.build import finish
    from gate.report.write import write_artifacts, write_report

    log = StageLog(progress)
    if model:
        log.keep(name=model)     # before anything can fail: an error report names its model
    try:
        cfg, trust = start(config_path, log, policy, model=model, target=target)
        with base_job(cfg, log, ref=baseline, report=baseline_report, enabled=compare_base) as job:
            result = execute("check", cfg, trust, log, in_process=in_process, show_progress=show_progress,
                             baseline=job, cache_dir=cache_dir)
        report = finish(log.record, status=result.status, exit_code=result.exit_code, summary=result.summary)
        write_artifacts(log.artifacts, Path(out_dir))
    except GateError as err:
        report = finish(log.record, status=err.report_status, exit_code=err.exit_code, summary=err.render(), error=err)
    except KeyboardInterrupt:
        err = InternalError("interrupted (Ctrl-C) before the gate finished")
        report = finish(log.record, status="error", exit_code=130, summary=err.message, error=err)
        write_report(report, Path(out_dir))
        raise
    except Exception as exc:  # noqa: BLE001 - an internal error still gets a report
        err, trace = InternalError.from_exception(exc)
        log.note(trace)
        report = finish(log.record, status="error", exit_code=err.exit_code, summary=err.message, error=err)
    write_report(report, Path(out_dir))
    return report


def usable_cache_dir(cache_dir: str | Path | None, cfg: GateConfig, log: StageLog) -> str | None:
    """The cache directory, resolved; None (with a note) when it cannot be trusted: a
    directory whose files are committed to the repository would let a pull request plant
    entries (docs/security.md)."""
    if cache_dir is None:
        return None
    path = Path(cache_dir).resolve()
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        log.note(f"cache {cache_dir} ignored: not a directory")
        return None
    from gate.run.parent.gitrepo import Repo

    repo = Repo.find(cfg.root)
    if repo is not None and path.is_relative_to(repo.root.resolve()):
        tracked = repo.git("ls-files", "--", repo.relative(path), check=False)
        if tracked:
            log.note(f"cache {cache_dir} ignored: it holds files committed to the repository "
                     f"({tracked.splitlines()[0]}, ...); a cache must come from earlier runs, not from the tree")
            return None
    return str(path)


@contextmanager
def base_job(cfg: GateConfig, log: StageLog, *, ref: str | None, report: str | None,
             enabled: bool) -> Iterator[BaseSource | NoBaseReason | None]:
    """The baseline the worker measures against, its files checked out for the duration;
    None when no configured check needs it. An explicit --baseline REF that cannot be had
    is an error; an automatic baseline that cannot be had is a NoBaseReason saying why (the
    checks that need it are then not judged, never silently passed). The base's gate.yml
    is parsed once, here (gate.run.parent.baseline.checkout); the worker gets it validated."""
    from gate.run.parent.baseline import checkout
    from gate.run.parent.gitrepo import GitError
    from gate.verdict.registry import configured

    needed = configured(cfg.thresholds, needs_base=True)
    if report:
        yield BaseSource(report=str(Path(report).resolve()))
        return
    if not needed:
        if ref is not None:
            log.note(ignored_baseline(ref))
        yield None
        return
    if not enabled:
        yield NoBaseReason(kind="disabled", reason="not compared with the base branch (--no-baseline)")
        return
    entered = False
    try:
        with checkout(cfg, ref=ref) as base:
            entered = True
            if base.config is None:
                log.keep(baseline=base.to_dict())
                log.note(*base.notes)
                yield NoBaseReason(kind="absent",
                                   reason=base.notes[0] if base.notes else "the base branch has no model yet")
            else:
                yield BaseSource(config=base.config, sha=base.ref.sha, label=base.ref.label,
                                 unchanged=base.unchanged, fingerprint=base.fingerprint,
                                 trust_model_code=base.config.file.trust_model_code,
                                 notes=(*base.ref.notes, *base.notes))
    except GitError as err:
        if ref is not None or entered:   # an explicit ref, or an error from the body: not ours to hide
            raise
        log.note(f"no baseline: {err.message}")
        yield NoBaseReason(kind="unavailable", reason=err.message)


def ignored_baseline(ref: str) -> str:
    """An explicit --baseline REF with nothing to compare: said, not silently dropped."""
    from gate.verdict.registry import ROWS

    names = ", ".join(row.name for row in ROWS if row.needs_base and not row.name.startswith("proxies."))
    return (f"--baseline {ref} was not used: no threshold in gate.yml compares against the base "
            f"(those that do: {names}, proxies.*.max_increase, metrics.*.*_vs_base)")
