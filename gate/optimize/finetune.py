"""Copies and fine-tuning. Every stage works on its own copy of the model: tfmot's
wrappers share layer objects with the model they are given, so training a wrapped model
would rewrite the weights of the model passed in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gate.config.steps import Finetune
from gate.errors import PolicyError

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_OPTIMIZER = "adam"


@dataclass(frozen=True)
class CompileInfo:
    """What the committed model says about training (from its compile config)."""

    loss: Any | None            # serialized Keras loss (str or dict)
    optimizer: str | None       # "adam", "sgd", ...
    learning_rate: float | None

    @classmethod
    def of(cls, model: Any) -> "CompileInfo":
        from gate.measure.tfenv import keras

        k = keras()
        loss = getattr(model, "loss", None)
        if loss is not None and not isinstance(loss, str):
            try:
                loss = k.losses.serialize(loss)
            except Exception:  # noqa: BLE001 - an unserializable custom loss counts as none
                loss = None
        opt = getattr(model, "optimizer", None)
        name, lr = None, None
        if opt is not None:
            name = type(opt).__name__.lower()
            try:
                lr = float(np.asarray(opt.learning_rate))
            except Exception:  # noqa: BLE001 - schedules have no single rate
                lr = None
        return cls(loss, name if name in ("adam", "sgd", "rmsprop") else None, lr)


def copy_model(model: Any) -> Any:
    """A structurally identical model with its own layers and copied weights."""
    from gate.measure.tfenv import keras

    k = keras()
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def compile_for(model: Any, spec: Finetune, info: CompileInfo, *, step: str) -> None:
    from gate.measure.tfenv import keras

    k = keras()
    loss = spec.loss or info.loss
    if loss is None:
        raise PolicyError(f"{step}: fine-tuning needs a loss, and neither the step nor the model says which",
                          field=f"steps.{step}.finetune.loss",
                          hint="set finetune: {loss: sparse_categorical_crossentropy} (or compile the model "
                               "with its loss before saving it)")
    lr = spec.learning_rate or info.learning_rate or DEFAULT_LEARNING_RATE
    name = (spec.optimizer.value if spec.optimizer else None) or info.optimizer or DEFAULT_OPTIMIZER
    optimizer = {"adam": k.optimizers.Adam, "sgd": k.optimizers.SGD, "rmsprop": k.optimizers.RMSprop}[name](lr)
    try:
        loss_obj = k.losses.get(loss)
    except Exception as exc:  # noqa: BLE001
        raise PolicyError(f"{step}: unknown loss {loss!r}: {exc}", field=f"steps.{step}.finetune.loss") from None
    model.compile(optimizer=optimizer, loss=loss_obj, metrics=["accuracy"])


def fit(model: Any, spec: Finetune, x: np.ndarray, y: np.ndarray, callbacks: list | None = None) -> None:
    from gate.measure.tfenv import keras

    if spec.epochs == 0:
        return
    keras().utils.set_random_seed(spec.seed)
    model.fit(x.astype(np.float32), y, epochs=spec.epochs, batch_size=spec.batch_size, shuffle=True,
              verbose=0, callbacks=callbacks or [])


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))
