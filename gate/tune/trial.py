"""One `gate tune` trial: a policy measured and judged by `gate check` itself.

The trial's gate.yml is the user's (model, data, thresholds, benchmark, evaluate, limits,
paths made absolute) with the policy replaced inline; `gate.run.parent.run_gate` measures
it in the worker through the content-addressed cache (a finished trial is a cache hit on
the next run) and writes report.json; the Trial is read back from that report. This is
the one place tune touches the run machinery, and the boundary a test fakes.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import yaml

# gate.yml keys a trial keeps as the user wrote them (the policy is the trial's own)
KEPT = ("thresholds", "benchmark", "evaluate", "limits", "trust_model_code")
ACCURACY_CHECKS = ("accuracy.", "metrics.")


@dataclass(frozen=True)
class Trial:
    """What one trial measured (from its report.json) and how it was judged."""

    index: int
    name: str
    family: str
    policy: dict
    status: str                       # pass | fail | error
    seconds: float
    cached: bool = False
    bytes_raw: int | None = None
    bytes_gzip: int | None = None
    reference_gzip: int | None = None
    compression: float | None = None  # reference gzip / candidate gzip
    accuracy: float | None = None     # candidate top-1 (classifier)
    accuracy_drop: float | None = None   # original - candidate, absolute
    metrics: dict = field(default_factory=dict)
    latency_ratio: float | None = None   # candidate p50 / reference p50
    latency_ms: float | None = None
    failed: tuple[str, ...] = ()      # messages of the failed checks (or the error)
    failed_checks: tuple[str, ...] = ()   # their names
    report: str | None = None
    cost_seconds: float | None = None     # what measuring it took without the cache (estimates)
    kept_float: int | None = None         # ops convert.keep_float kept out of quantization (None: no keep_float)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def accuracy_failed(self) -> bool:
        return any(n.startswith(ACCURACY_CHECKS) for n in self.failed_checks)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failed"], out["failed_checks"] = list(self.failed), list(self.failed_checks)
        return out


RunTrial = Callable[[int, str, str, dict], Trial]


def trial_config(config_path: Path, policy: dict, trust: bool) -> dict:
    """The user's gate.yml with absolute paths, the given inline policy and the parent's
    trust decision."""
    raw = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    root = Path(config_path).resolve().parent
    data = {k: absolute_source(v, root) for k, v in raw["data"].items() if v is not None}
    cfg = {"model": str((root / raw["model"]).resolve()), "data": data, "policy": policy}
    cfg.update({k: raw[k] for k in KEPT if k in raw})
    cfg["trust_model_code"] = bool(trust)
    return cfg


PATH_KEYS = ("npz", "images", "tfrecord", "csv")   # gate.config.sources: the keys that hold a path or glob


def absolute_source(value, root: Path):
    """A data source of gate.yml (a path, or a {npz|images|tfrecord|csv|python: ...} mapping)
    with its path made absolute, so the trial's gate.yml (in another folder) reads the same data."""
    if isinstance(value, str):
        return str((root / value).resolve())
    out = dict(value)
    for key in PATH_KEYS:
        if isinstance(out.get(key), str):
            out[key] = str(root / out[key])
    if isinstance(out.get("python"), str):
        file, function = out["python"].rsplit(":", 1)
        out["python"] = f"{(root / file).resolve()}:{function}"
    return out


def read_trial(index: int, name: str, family: str, policy: dict, report: dict, seconds: float,
               path: Path | None = None) -> Trial:
    ref, cand, orig = report.get("reference") or {}, report.get("candidate") or {}, report.get("original") or {}
    checks = report.get("checks") or []
    failed = [c for c in checks if not c.get("passed")]
    messages = tuple(c.get("message") or _check_message(c) for c in failed)
    if report.get("status") == "error":
        err = report.get("error") or {}
        messages = (err.get("message") or report.get("summary") or "error",)
    acc = ((cand.get("evaluation") or {}).get("accuracy") or {}).get("top1")
    acc0 = (orig.get("accuracy") or {}).get("top1")
    gz, rgz = cand.get("bytes_gzip"), ref.get("bytes_gzip")
    p50 = (cand.get("latency") or {}).get("p50_ms")
    rp50 = (ref.get("latency") or {}).get("p50_ms")
    timings = report.get("timings_s") or {}
    return Trial(index, name, family, policy, report.get("status", "error"), round(seconds, 2),
                 cached=any(k.endswith("cache") for k in timings),
                 bytes_raw=cand.get("bytes_raw"), bytes_gzip=gz, reference_gzip=rgz,
                 compression=round(rgz / gz, 3) if gz and rgz else None,
                 accuracy=acc, accuracy_drop=round(acc0 - acc, 5) if acc is not None and acc0 is not None else None,
                 metrics=(cand.get("evaluation") or {}).get("metrics") or {},
                 latency_ratio=round(p50 / rp50, 3) if p50 and rp50 else None, latency_ms=p50,
                 failed=messages, failed_checks=tuple(c.get("name", "") for c in failed),
                 report=str(path) if path else None,
                 kept_float=len(report["keep_float"].get("kept") or []) if isinstance(report.get("keep_float"), dict)
                 else None)


def _check_message(check: dict) -> str:
    """A report.json check's one-line message (gate.verdict.check.Check.message: a
    `latency.max_regression` figure is a change in %, as the record stores it)."""
    from pydantic import ValidationError

    from gate.verdict.check import Check

    try:
        return Check.model_validate(check).message
    except ValidationError:
        return check.get("name", "")


def gate_runner(config_path: Path, out_dir: Path, trust: bool, cache_dir: str | None,
                in_process: bool = False) -> RunTrial:
    """Trials through `gate check`'s own code (run_gate, the worker, the cache)."""
    from gate.run.parent.run import run_gate

    def run(index: int, name: str, family: str, policy: dict) -> Trial:
        work = out_dir / "trials" / name
        work.mkdir(parents=True, exist_ok=True)
        cfg_path = work / "gate.yml"
        text = yaml.safe_dump(trial_config(config_path, policy, trust), sort_keys=False)
        cfg_path.write_text(text, encoding="utf-8")
        start = time.perf_counter()
        run_gate(cfg_path, work, show_progress=False, compare_base=False, cache_dir=cache_dir,
                 in_process=in_process)
        report = json.loads((work / "report.json").read_text(encoding="utf-8"))
        trial = read_trial(index, name, family, policy, report, time.perf_counter() - start, work / "report.json")
        return replace(trial, cost_seconds=remember_cost(work / COST, text, trial))

    return run


COST = "cost.json"


def remember_cost(path: Path, config_text: str, trial: Trial) -> float | None:
    """The seconds the trial took without the cache: measured now, or (a cache hit) what the
    earlier run of the same trial config recorded next to it. A re-run then estimates the
    cost of what it has not measured yet as the first run did."""
    key = hashlib.sha256(config_text.encode()).hexdigest()
    if not trial.cached:
        path.write_text(json.dumps({"config_sha256": key, "seconds": trial.seconds}), encoding="utf-8")
        return trial.seconds
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return float(data["seconds"]) if data.get("config_sha256") == key else None
