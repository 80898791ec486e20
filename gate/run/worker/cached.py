"""`measure` through the content-addressed cache (gate.run.worker.cache).

The key is everything that decides a measured model: the model file, the train data, the
eval data actually scored (the PR's, for the base), the resolved policy, the evaluation
settings and the metrics the thresholds look up, whether model code is trusted, and the
tool versions. The value: both .tflite files, every evaluation (outputs, per-example
values), the optimization stages and their plan, the bridge check, the notes, and the
PR candidate's per-layer diagnosis (`layers`, `keep_float`). Latency
is never cached: it is timed again, side by side, every run. A hit imports no TensorFlow:
only the data files are read again and bound to the model.
"""
from __future__ import annotations

import dataclasses
import time

from gate import __version__, provenance
from gate.config.load import GateConfig
from gate.measure.data import Split
from gate.run.worker.cache import Cache, cache_key
from gate.report.record import PlanInfo
from gate.run.worker.candidate import Branch, MeasuredModel, data_source, measure, model_info, read_data, threshold_metrics
from gate.run.digest import file_digest
from gate.run.worker.codec import RecordError, decode, encode
from gate.run.worker.layer_diagnosis import keep_float_note
from gate.run.stagelog import StageLog

REBUILT = ("eval_split", "train", "policy", "scoring", "plan")   # from the config and the data files; the plan as JSON
KIND = "measured-model"
EXTRA_DISTS = ("keras", "litert-quantizer", "h5py", "scipy")


def tool_versions() -> dict[str, str]:
    return {"gate": __version__, **provenance.versions(EXTRA_DISTS)}


def measure_key(cfg: GateConfig, *, trust_model_code: bool, eval_split: Split | None,
                extra_metrics: tuple[str, ...]) -> str:
    """`eval_split`: the examples that will be scored (the PR's for the base; None: cfg's,
    by its source's content digest)."""
    from gate.measure.data import source_digest

    policy = cfg.policy.policy.model_dump(mode="json", exclude={"description", "extends"}) if cfg.policy else None
    evaluated = ({"sha256": eval_split.sha256, "max_examples": eval_split.head_limit} if eval_split is not None else
                 {"sha256": source_digest(data_source(cfg, "eval"), trusted=trust_model_code),
                  "max_examples": cfg.evaluate.max_examples})
    return cache_key({
        "kind": KIND, "model": file_digest(cfg.model_path),
        "train": source_digest(data_source(cfg, "train"), trusted=trust_model_code),
        "eval": evaluated,
        "policy": policy, "evaluate": cfg.evaluate.model_dump(mode="json"),
        "metrics": sorted(set(threshold_metrics(cfg)) | set(extra_metrics)),
        "trust_model_code": trust_model_code, "versions": tool_versions()})


def measure_cached(cfg: GateConfig, log: StageLog, cache: Cache | None, *, trust_model_code: bool,
                   branch: Branch = Branch.PR, eval_split: Split | None = None,
                   extra_metrics: tuple[str, ...] = ()) -> MeasuredModel:
    """`gate.run.candidate.measure`, or its result from the cache. Same arguments."""
    if cache is None:
        return measure(cfg, log, trust_model_code=trust_model_code, branch=branch, eval_split=eval_split,
                       extra_metrics=extra_metrics)
    start = time.perf_counter()
    key = measure_key(cfg, trust_model_code=trust_model_code, eval_split=eval_split, extra_metrics=extra_metrics)
    entry = cache.get(key)
    if entry is not None:
        try:
            measured = restore(entry.record, entry.files, cfg, log, branch, eval_split, extra_metrics,
                               trusted=trust_model_code)
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            cache.notes.append(f"cache entry {key[:12]} ignored: {exc}")
            measured = None
        if measured is not None:
            log.record = log.record.with_timing(branch.stage("cache"), time.perf_counter() - start)
            log.note(branch.says(f"measured model from the cache (entry {key[:12]}): model, data, policy and "
                                 "tool versions are unchanged; latency was timed again"))
            return measured
    measured = measure(cfg, log, trust_model_code=trust_model_code, branch=branch, eval_split=eval_split,
                       extra_metrics=extra_metrics)
    store(cache, key, measured, diagnosis(log) if branch is Branch.PR else {})
    return measured


def diagnosis(log: StageLog) -> dict:
    """The PR candidate's `layers` and `keep_float` sections (gate.run.worker.layer_diagnosis),
    as JSON, to store with the measured model."""
    record = log.record
    return {"layers": None if record.layers is None else [r.model_dump(mode="json") for r in record.layers],
            "keep_float": None if record.keep_float is None else record.keep_float.model_dump(mode="json")}


def store(cache: Cache, key: str, measured: MeasuredModel, diagnosed: dict | None = None) -> None:
    blobs: dict[str, bytes] = {}
    fields = {f.name: encode(getattr(measured, f.name), blobs) for f in dataclasses.fields(measured)
              if f.name not in REBUILT}
    plan = measured.plan.model_dump(mode="json") if measured.plan is not None else None
    try:
        cache.put(key, {"measured": fields, "plan": plan, "diagnosis": diagnosed or {}}, blobs)
    except OSError as exc:            # a full or read-only disk costs the cache, never the run
        cache.notes.append(f"cache entry {key[:12]} not written: {exc}")


def restore(record: dict, blobs: dict[str, bytes], cfg: GateConfig, log: StageLog, branch: Branch,
            eval_split: Split | None, extra_metrics: tuple[str, ...], *, trusted: bool = False) -> MeasuredModel:
    """The stored measured model, its data read and bound again; the PR's sections go into
    the run record as `measure` would have written them."""
    fields = {name: decode(value, blobs) for name, value in record["measured"].items()}
    expected = {f.name for f in dataclasses.fields(MeasuredModel)} - set(REBUILT)
    if set(fields) != expected:
        raise RecordError(f"fields {sorted(set(fields) ^ expected)} differ")
    plan = PlanInfo.model_validate(record["plan"]) if record["plan"] is not None else None
    if branch is Branch.PR:
        log.keep(model=model_info(cfg, fields["facts"]), plan=plan,
                 stages=None if fields["stages"] is None else [s.to_dict() for s in fields["stages"]])
        diagnosed = record.get("diagnosis") or {}
        if diagnosed.get("keep_float") is not None:
            log.keep(keep_float=diagnosed["keep_float"])
            log.note(keep_float_note(diagnosed["keep_float"]))
        if diagnosed.get("layers") is not None:
            log.keep(layers=diagnosed["layers"])
    data = read_data(cfg, fields["facts"], log, branch, eval_split, extra_metrics, trusted=trusted)
    return MeasuredModel(**fields, eval_split=data.eval_split, train=data.train, scoring=data.scoring,
                         policy=cfg.policy.policy if cfg.policy else None, plan=plan)


def proxies_cached(content: bytes, sha256: str, threads: int, cache: Cache | None):
    """gate.measure.proxies.proxies of a .tflite, or its figures from the cache (by content)."""
    from gate.measure.proxies import Proxies, proxies

    if cache is None:
        return proxies(content, threads=threads)
    key = cache_key({"kind": "proxies", "sha256": sha256, "threads": threads, "versions": tool_versions()})
    entry = cache.get(key)
    if entry is not None:
        try:
            found = decode(entry.record["proxies"], entry.files)
            if isinstance(found, Proxies):
                return found
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            cache.notes.append(f"cache entry {key[:12]} ignored: {exc}")
    figures = proxies(content, threads=threads)
    blobs: dict[str, bytes] = {}
    try:
        cache.put(key, {"proxies": encode(figures, blobs)}, blobs)
    except OSError as exc:
        cache.notes.append(f"cache entry {key[:12]} not written: {exc}")
    return figures
