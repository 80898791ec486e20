"""The parent process of every command that touches a model (`gate check`, `gate calibrate`,
`gate action`). No TensorFlow here: it reads gate.yml, decides trust from the base branch
(gate.run.trust), checks out the base for the comparison (gate.run.baseline), hands one
Job to the worker (gate.run.isolate -> gate.run.worker) and writes the report on every
exit path: pass, fail, bad input, a crashed worker, an internal error, Ctrl-C."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gate.config.load import GateConfig, config_summary, load_config
from gate.console import Progress
from gate.errors import GateError, InternalError
from gate.run.protocol import BaseJob, Job, NoBase, Task
from gate.run.stagelog import StageLog


def start(config_path: str | Path, log: StageLog, target: str | None = None) -> tuple[GateConfig, bool]:
    """Read gate.yml (benchmark.target overridden by `target`) and decide trust_model_code
    (a pull request cannot grant itself trust)."""
    from gate.config.load import with_target
    from gate.run.trust import decide

    cfg = with_target(load_config(config_path), target)
    decision = decide(cfg)
    log.keep({"trust": decision.to_dict(), "config": config_summary(cfg)})
    log.note(*decision.notes)
    return cfg, decision.trust_model_code


def execute(task: Task, cfg: GateConfig, trust: bool, log: StageLog, *, in_process: bool = False,
            show_progress: bool = True, baseline: BaseJob | NoBase | None = None, repeats: int = 0,
            cache_dir: str | Path | None = None, target: str | None = None) -> dict:
    """Run a task in the worker under the config's limits (or here, for debugging); the
    worker's parts and files land in `log`. Returns the worker's result."""
    job = Job(task, str(cfg.path), trust, show_progress, baseline, dict(log.parts), repeats,
              cache_dir=usable_cache_dir(cache_dir, cfg, log), target=target)
    if in_process:
        from gate.run.worker import run_task

        return run_task(job, cfg, log)
    from gate.run.isolate import run_isolated

    return run_isolated(job, cfg.file.limits, parts=log.parts, artifacts=log.artifacts)


def run_gate(config_path: str | Path, out_dir: str | Path, progress: Progress = lambda _: None, *,
             in_process: bool = False, show_progress: bool = True, baseline: str | None = None,
             baseline_report: str | None = None, compare_base: bool = True,
             cache_dir: str | Path | None = None, target: str | None = None) -> dict:
    """`gate check`: run the gate and write report.json + report.md on every path. Returns
    the report. `in_process` measures here instead of in the limited worker (debugging,
    profiling; never for untrusted models); `cache_dir` (None: no cache) keeps measured
    models for re-runs (gate.run.cache)."""
    from gate.report.build import finish
    from gate.report.write import write_artifacts, write_report

    log = StageLog(progress)
    try:
        cfg, trust = start(config_path, log, target)
        with base_job(cfg, log, ref=baseline, report=baseline_report, enabled=compare_base) as job:
            result = execute("check", cfg, trust, log, in_process=in_process, show_progress=show_progress,
                             baseline=job, cache_dir=cache_dir, target=target)
        report = finish(log.parts, status=result["status"], exit_code=result["exit_code"], summary=result["summary"])
        write_artifacts(log.artifacts, Path(out_dir))
    except GateError as err:
        report = finish(log.parts, status="error", exit_code=err.exit_code, summary=err.render(), error=err)
    except KeyboardInterrupt:
        err = InternalError("interrupted (Ctrl-C) before the gate finished")
        report = finish(log.parts, status="error", exit_code=130, summary=err.message, error=err)
        write_report(report, Path(out_dir))
        raise
    except Exception as exc:  # noqa: BLE001 - an internal error still gets a report
        err, trace = InternalError.from_exception(exc)
        log.note(trace)
        report = finish(log.parts, status="error", exit_code=err.exit_code, summary=err.message, error=err)
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
    from gate.run.gitrepo import Repo

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
             enabled: bool) -> Iterator[BaseJob | NoBase | None]:
    """The baseline the worker measures against, its files checked out for the duration;
    None when no configured check needs it. An explicit --baseline REF that cannot be had
    is an error; an automatic baseline that cannot be had is a NoBase saying why (the
    checks that need it are then not judged, never silently passed)."""
    from gate.run.baseline import checkout
    from gate.run.gitrepo import GitError
    from gate.verdict.registry import configured

    needed = configured(cfg.thresholds, needs_base=True)
    if report:
        yield BaseJob(report=str(Path(report).resolve()))
        return
    if not needed:
        yield None
        return
    if not enabled:
        yield NoBase("disabled", "not compared with the base branch (--no-baseline)")
        return
    entered = False
    try:
        with checkout(cfg, ref=ref) as base:
            entered = True
            if base.config is None:
                log.keep({"baseline": base.to_dict()})
                log.note(*base.notes)
                yield NoBase("absent", base.notes[0] if base.notes else "the base branch has no model yet")
            else:
                yield BaseJob(config=str(base.config.path), sha=base.ref.sha, label=base.ref.label,
                              unchanged=base.unchanged, fingerprint=base.fingerprint,
                              trust_model_code=base.config.file.trust_model_code,
                              notes=(*base.ref.notes, *base.notes))
    except GitError as err:
        if ref is not None or entered:   # an explicit ref, or an error from the body: not ours to hide
            raise
        log.note(f"no baseline: {err.message}")
        yield NoBase("unavailable", err.message)
