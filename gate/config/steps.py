"""The typed shape of a policy's optimization `steps` (pydantic, no TF).

Each step is a one-key mapping naming a technique (`prune`, `cluster`, `qat`,
`structured_prune`) with its options in tfmot's vocabulary.
"""
from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from gate.config.strict import Strict

Role = Literal["output", "input", "embedding"]


class LayerSelect(Strict):
    """Which layers a step touches. Class names are Keras class names (Dense, Conv2D...);
    roles are graph roles (gate.optimize.roles): `output` (a layer with a kernel that reaches
    a model output through layers without one: the head, whatever its name), `input` (the
    first layer with a kernel: the stem), `embedding` (Embedding layers)."""

    include: list[str] = Field([], description="Only these layer classes (empty: every class the step supports).")
    exclude: list[str] = Field([], description="Never these layer classes.")
    include_names: list[str] = Field([], description="Only these layer names (empty: any name).")
    exclude_names: list[str] = Field([], description="Never these layer names, e.g. the classification head.")
    include_regex: str | None = Field(None, description="Only layer names matching this regex (re.search).")
    exclude_regex: str | None = Field(None, description="Never layer names matching this regex.")
    include_roles: list[Role] = Field([], description="Only layers with one of these graph roles.")
    exclude_roles: list[Role] = Field([], description="Never layers with these graph roles, e.g. [output]: "
                                                      "the model's output layer(s), by graph, not by name.")
    min_weights: int = Field(0, ge=0, description="Skip layers whose kernel has fewer weights than this.")

    @field_validator("include_regex", "exclude_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class Optimizer(str, Enum):
    adam = "adam"
    sgd = "sgd"
    rmsprop = "rmsprop"


class Finetune(Strict):
    """Fine-tuning after a step is applied. Unset loss, optimizer and learning rate come
    from the model's own compile config. The budget is `epochs` passes over the train
    split, or exactly `steps` batches; `max_steps` caps either (so one preset fits a small
    and a large train split)."""

    epochs: int = Field(2, ge=0, le=10_000, description="Passes over the train split.")
    steps: int | None = Field(None, ge=1, le=10_000_000,
                              description="Train exactly this many batches (cycling the train split) instead of "
                                          "`epochs` passes.")
    max_steps: int | None = Field(None, ge=1, le=10_000_000,
                                  description="At most this many batches in all (caps `epochs` on a large split).")
    batch_size: int = Field(32, ge=1, le=65_536)
    learning_rate: float | None = Field(None, gt=0, le=10)
    optimizer: Optimizer | None = Field(None, strict=False)
    loss: str | None = Field(None, description="A Keras loss name, e.g. sparse_categorical_crossentropy.")
    seed: int = Field(0, ge=0)
    bn_momentum: float | None = Field(
        0.9, gt=0, lt=1,
        description="BatchNormalization momentum while fine-tuning, where the model's is higher (restored "
                    "afterwards). keras.applications ship 0.99-0.999, which leaves the moving statistics at "
                    "their old values in a short fit; null keeps the model's.")

    @property
    def trains(self) -> bool:
        return self.steps is not None or self.epochs > 0


class ScheduleName(str, Enum):
    constant = "constant"
    polynomial_decay = "polynomial_decay"


class CustomSchedule(Strict):
    custom: str = Field(..., pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                        description="module:Class of a tfmot PruningSchedule subclass in the repo.")


Lax = Field(strict=False)  # enums from YAML strings, tuples from YAML lists
LayerName = Annotated[str, Field(min_length=1)]


def _per_layer_doc(what: str) -> str:
    return (f"Per-layer {what} by Keras layer name, overriding the step's global value for those layers "
            "(`gate tune` writes it from a measured sensitivity). Every name must be a layer the step "
            "selects.")
Pair = Annotated[tuple[int, int], Lax]


class PruneStep(Strict):
    """tfmot.sparsity.keras.prune_low_magnitude."""

    schedule: Annotated[ScheduleName, Lax] | CustomSchedule = ScheduleName.polynomial_decay
    target_sparsity: float | None = Field(None, ge=0, lt=1, description="constant: the sparsity held.")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="polynomial_decay: sparsity at begin_step.")
    final_sparsity: float | None = Field(None, ge=0, lt=1, description="polynomial_decay: sparsity at end_step.")
    begin_step: int = Field(0, ge=0)
    end_step: int | Literal["auto"] = Field("auto", description="auto: the last fine-tuning step (the budget).")
    power: float = Field(3.0, gt=0)
    frequency: int = Field(100, ge=1, description="Steps between mask updates.")
    block_size: Pair = (1, 1)
    sparsity_m_by_n: Pair | None = Field(None, description="e.g. [2, 4] for 2:4 sparsity.")
    pruning_policy: Literal["xnnpack"] | None = Field(None, description="PruneForLatencyOnXNNPack.")
    per_layer: dict[LayerName, Annotated[float, Field(ge=0, lt=1)]] = Field(
        {}, description=_per_layer_doc("final sparsity (0: left dense)") + " Each listed layer gets its own "
                                                                          "schedule of the same shape.")
    layers: LayerSelect = LayerSelect()
    finetune: Finetune = Finetune()

    @model_validator(mode="after")
    def _schedule_fields(self) -> "PruneStep":
        if self.per_layer and (self.sparsity_m_by_n is not None or self.pruning_policy is not None
                               or isinstance(self.schedule, CustomSchedule)):
            raise ValueError("per_layer sets a sparsity per layer; it does not combine with sparsity_m_by_n, "
                             "pruning_policy or a custom schedule")
        if self.schedule == ScheduleName.constant and self.target_sparsity is None:
            raise ValueError("schedule: constant needs target_sparsity")
        if self.schedule == ScheduleName.polynomial_decay and self.sparsity_m_by_n is None:
            if self.final_sparsity is None:
                raise ValueError("schedule: polynomial_decay needs final_sparsity")
            if self.final_sparsity < self.initial_sparsity:
                raise ValueError("final_sparsity must be >= initial_sparsity")
        if isinstance(self.end_step, int) and self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({self.end_step}) must be after begin_step ({self.begin_step})")
        if self.sparsity_m_by_n is not None:
            m, n = self.sparsity_m_by_n
            if not 0 < m < n:
                raise ValueError(f"sparsity_m_by_n must be [m, n] with 0 < m < n; got [{m}, {n}]")
        if min(self.block_size) < 1:
            raise ValueError("block_size entries must be >= 1")
        return self


class ClusterInit(str, Enum):
    linear = "linear"
    kmeans_pp = "kmeans++"
    density = "density"
    random = "random"


class ClusterStep(Strict):
    """tfmot.clustering.keras.cluster_weights."""

    clusters: int = Field(..., ge=2, le=65_536, description="number_of_clusters (centroids per kernel).")
    init: ClusterInit = Field(ClusterInit.kmeans_pp, strict=False, description="cluster_centroids_init.")
    per_channel: bool = Field(False, description="cluster_per_channel (Conv2D only).")
    preserve_sparsity: bool = Field(False, description="Keep pruned zeros at zero while clustering.")
    per_layer: dict[LayerName, Annotated[int, Field(ge=2, le=65_536)]] = Field(
        {}, description=_per_layer_doc("number of clusters"))
    layers: LayerSelect = LayerSelect()
    finetune: Finetune = Finetune()


class Preserve(str, Enum):
    sparsity = "sparsity"
    clusters = "clusters"


class QatStep(Strict):
    """tfmot.quantization.keras: quantize_model, or selective annotate + quantize_apply.
    preserve: [sparsity] -> PQAT, [clusters] -> CQAT, [sparsity, clusters] -> PCQAT."""

    preserve: list[Annotated[Preserve, Lax]] = []
    layers: LayerSelect | None = Field(None, description="Selective QAT: annotate only these layers.")
    finetune: Finetune = Finetune()

    @model_validator(mode="after")
    def _trains(self) -> "QatStep":
        if not self.finetune.trains:
            raise ValueError("a qat step must train at least one step (finetune.epochs >= 1 or finetune.steps): "
                             "a model straight from tfmot's quantize_apply has its quantizer ranges at their "
                             "initial -6..6 and scores at chance until a training step sets them")
        return self


class StructuredStep(Strict):
    """Remove whole Dense units / Conv2D filters with the smallest norm; rebuild a smaller model."""

    ratio: float = Field(..., gt=0, lt=1, description="Fraction of units/filters removed per selected layer.")
    norm: Literal["l1", "l2"] = "l1"
    min_units: int = Field(1, ge=1)
    per_layer: dict[LayerName, Annotated[float, Field(ge=0, lt=1)]] = Field(
        {}, description=_per_layer_doc("ratio of units/filters removed (0: kept whole)")
        + " Layers that share channels (a residual add) are pruned together at the group's lowest ratio.")
    layers: LayerSelect = LayerSelect()
    finetune: Finetune = Finetune()


StepKind = Literal["prune", "cluster", "qat", "structured_prune"]


class Step(Strict):
    """One step: exactly one of the keys."""

    prune: PruneStep | None = None
    cluster: ClusterStep | None = None
    qat: QatStep | None = None
    structured_prune: StructuredStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: object) -> object:
        if isinstance(data, dict) and len(data) != 1:
            keys = ", ".join(map(str, data)) or "none"
            raise ValueError(f"a step has exactly one of prune, cluster, qat, structured_prune; got {keys}")
        return data

    @model_serializer(mode="wrap")
    def _only_its_kind(self, handler):
        """Dumped as it is written, `{kind: spec}`, so the dump validates again (the
        worker's Job carries the validated config)."""
        return {kind: spec for kind, spec in handler(self).items() if spec is not None}

    @property
    def kind(self) -> StepKind:
        for name in ("prune", "cluster", "qat", "structured_prune"):
            if getattr(self, name) is not None:
                return name  # type: ignore[return-value]
        raise AssertionError("validated step without a kind")

    @property
    def spec(self) -> PruneStep | ClusterStep | QatStep | StructuredStep:
        return getattr(self, self.kind)


class Verify(Strict):
    """What happens when a later stage loses what an earlier one achieved."""

    on_loss: Literal["warn", "fail"] = "warn"
    sparsity_tolerance: float = Field(0.02, ge=0, le=1, description="Allowed drop in a layer's sparsity.")
    cluster_tolerance: int = Field(0, ge=0, description="Allowed extra unique values per kernel.")
