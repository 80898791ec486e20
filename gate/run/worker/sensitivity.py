"""The worker's side of `gate tune`'s per-layer sensitivity (gate.optimize.sensitivity):
load the model as `gate check` does, pick the layers each compression kind would touch
(the selection the tuned steps use: every supported layer but the output layer by graph
role), and measure each layer's drop on a bounded sample of the train split (the eval split
when there is none: then say so), without fine-tuning."""
from __future__ import annotations

import time

from gate.config.load import GateConfig
from gate.errors import PolicyError
from gate.run.protocol import Job
from gate.run.stagelog import StageLog

SAMPLE = 256          # examples scored per compressed layer
TUNED_SELECTION = {"exclude_roles": ["output"]}


def candidates(model) -> dict[str, list[str]]:
    """kind -> the layers a tuned step of that kind would change."""
    from gate.config.steps import ClusterStep, LayerSelect, StructuredStep
    from gate.optimize import cluster, prune, structured_step
    from gate.optimize.roles import layer_roles
    from gate.optimize.select import select_layers
    from gate.optimize.structured import structured_plan

    roles = layer_roles(model)
    sel = LayerSelect(**TUNED_SELECTION)
    out = {"prune": list(select_layers(model.layers, sel, prune.unsupported, roles).chosen),
           "cluster": list(select_layers(model.layers, sel, cluster.unsupported_for(ClusterStep(clusters=32)),
                                         roles).chosen)}
    try:
        chosen = structured_step.selection(model, StructuredStep(ratio=0.5, layers=sel)).chosen
        plan = structured_plan(model, ratio=0.5, selected=set(chosen))
        out["structured_prune"] = [s.name for s in plan.shrunk if s.after < s.before]
    except PolicyError:
        out["structured_prune"] = []
    return out


def sensitivity(cfg: GateConfig, log: StageLog, job: Job) -> dict:
    """measure(), or its result from the content-addressed cache (same model, data, sample
    and tool versions)."""
    from gate.measure.data import source_digest
    from gate.run.digest import file_digest
    from gate.run.worker.cache import Cache, cache_key
    from gate.run.worker.cached import tool_versions
    from gate.run.worker.check import open_cache

    cache: Cache | None = open_cache(job)
    name, ref = sample_source(cfg)
    key = cache_key({"kind": "sensitivity", "model": file_digest(cfg.model_path),
                     "data": {name: source_digest(ref, trusted=job.trust_model_code)}, "sample": SAMPLE,
                     "selection": TUNED_SELECTION, "versions": tool_versions()})
    if cache is not None:
        entry = cache.get(key)
        if entry is not None and isinstance(entry.record.get("sensitivity"), dict):
            return {**entry.record["sensitivity"], "cached": True}
    result = measure(cfg, log, job)
    if cache is not None:
        try:
            cache.put(key, {"sensitivity": result}, {})
        except OSError as exc:          # a full disk costs the cache, never the tune
            log.note(f"sensitivity not cached: {exc}")
    return result


def sample_source(cfg: GateConfig):
    """("train", data.train's source), or ("eval", data.eval's) when there is no train split."""
    from gate.run.worker.candidate import data_source

    train = data_source(cfg, "train")
    return ("train", train) if train is not None else ("eval", data_source(cfg, "eval"))


def measure(cfg: GateConfig, log: StageLog, job: Job) -> dict:
    from gate.measure.data import bind, head, open_split
    from gate.measure.evaluate import keras_feed
    from gate.measure.model import load_model
    from gate.optimize import sensitivity as sens
    from gate.optimize.flatten import flatten, nested_models

    start = time.perf_counter()
    with log.stage("load", f"loading {cfg.model_path.name}"):
        loaded = load_model(cfg.model_path, trust_model_code=job.trust_model_code)
    if loaded.is_tflite:
        return {"layers": {}, "note": "a committed .tflite: no Keras layers to compress"}
    model = loaded.keras
    if loaded.is_keras3:
        from gate.measure.bridge import to_tf_keras

        model, _notes = to_tf_keras(model)
    if nested_models(model):
        model = flatten(model)
    name, ref = sample_source(cfg)
    split = bind(head(open_split(ref, name, loaded.facts, trusted=job.trust_model_code), SAMPLE), loaded.facts)
    classifier = [o for o, t in split.tasks.items() if t.kind == "classifier" and o in split.y]
    names = list(loaded.facts.output_names)
    primary = names.index(classifier[0]) if classifier and classifier[0] in names else 0
    labels = split.y[classifier[0]].reshape(-1) if classifier else None
    if labels is not None and labels.ndim == 1 and split.y[classifier[0]].ndim > 1:
        labels = labels.argmax(-1)
    with log.stage("sensitivity", "measuring per-layer sensitivity (one layer compressed at a time)"):
        scorer = sens.Scorer(model, keras_feed(model, split), labels, primary)
        curves = sens.measure(model, scorer, candidates(model), progress=log.progress)
    return {"examples": split.n, "split": split.name, "metric": "accuracy" if labels is not None else "output_rms",
            "base": scorer.base, "seconds": round(time.perf_counter() - start, 2),
            "layers": {kind: [{"layer": c.layer, "weights": c.weights, "drops": {str(s): d for s, d in c.drops.items()}}
                              for c in cs] for kind, cs in curves.items()}}
