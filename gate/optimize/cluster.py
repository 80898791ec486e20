"""Weight clustering (tfmot.clustering.keras.cluster_weights), stripped after fine-tuning."""
from __future__ import annotations

from typing import Any

from gate.config.steps import ClusterInit, ClusterStep
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, copy_model, fit
from gate.optimize.select import TOO_FEW, check_per_layer, choose, kernel_size, model_roles, wrap_chosen

INITS = {ClusterInit.linear: "LINEAR", ClusterInit.kmeans_pp: "KMEANS_PLUS_PLUS",
         ClusterInit.density: "DENSITY_BASED", ClusterInit.random: "RANDOM"}


def unsupported_for(spec: ClusterStep):
    def unsupported(layer: Any) -> str | None:
        from gate.measure.tfenv import tfmot

        tfmot()
        from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
            ClusteringRegistry,
        )

        ck = tfmot().clustering.keras
        cls = type(layer).__name__
        if isinstance(layer, ck.ClusterableLayer):
            return None
        if not ClusteringRegistry.supports(layer):
            return f"unsupported by tfmot clustering ({cls} is not in its ClusteringRegistry)"
        if ClusteringRegistry._LAYERS_WEIGHTS_MAP.get(layer.__class__) == [] or not layer.trainable_weights:  # noqa: SLF001
            return f"unsupported by tfmot clustering (no clusterable weights: tfmot does not cluster {cls})"
        clusters = spec.per_layer.get(layer.name, spec.clusters)
        if kernel_size(layer) <= clusters:
            return f"{TOO_FEW} ({kernel_size(layer)} weights for {clusters} clusters)"
        return None
    return unsupported


def apply(model: Any, spec: ClusterStep, ctx: StepContext) -> StepOutput:
    from gate.measure.tfenv import keras, tfmot

    k, ck = keras(), tfmot().clustering.keras
    work = copy_model(model)
    selection = choose(work.layers, spec.layers, unsupported_for(spec), "cluster", model_roles(work, spec.layers))
    check_per_layer(spec.per_layer, work.layers, selection, "cluster")
    chosen = set(selection.chosen)
    kwargs = {"cluster_centroids_init": getattr(ck.CentroidInitialization, INITS[spec.init]),
              "preserve_sparsity": spec.preserve_sparsity}

    def wrap(layer: Any) -> Any:
        per_channel = spec.per_channel and isinstance(layer, k.layers.Conv2D)
        return ck.cluster_weights(layer, number_of_clusters=spec.per_layer.get(layer.name, spec.clusters),
                                  cluster_per_channel=per_channel, **kwargs)

    wrapped = wrap_chosen(work, selection.chosen, wrap)
    compile_for(wrapped, spec.finetune, ctx.compile_info, step="cluster")
    fit(wrapped, spec.finetune, ctx.x, ctx.y, ctx=ctx)
    notes = []
    if spec.per_channel and any(not isinstance(work.get_layer(n), k.layers.Conv2D) for n in chosen):
        notes.append("per_channel applies to Conv2D only; other layers were clustered per tensor")
    out = selection.to_dict()
    if spec.per_layer:
        out["per_layer"] = dict(spec.per_layer)
    return StepOutput(ck.strip_clustering(wrapped), out, notes)
