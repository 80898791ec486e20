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
        """From a tf_keras or a Keras 3 model (whose loss objects become their built-in names)."""
        from gate.measure.tfenv import keras

        k = keras()
        loss = getattr(model, "loss", None)
        if isinstance(loss, dict):
            loss = {name: _loss_name(v, k) for name, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            loss = [_loss_name(v, k) for v in loss]
        else:
            loss = _loss_name(loss, k)
        opt = getattr(model, "optimizer", None)
        name, lr = None, None
        if opt is not None:
            name = type(opt).__name__.lower()
            try:
                lr = float(np.asarray(opt.learning_rate))
            except Exception:  # noqa: BLE001 - schedules have no single rate
                lr = None
        return cls(loss, name if name in ("adam", "sgd", "rmsprop") else None, lr)


def _loss_name(loss: Any, k: Any) -> Any:
    """A loss as compile() takes it again: a built-in's name, a Loss's config, or None."""
    if loss is None or isinstance(loss, str):
        return loss
    if not isinstance(loss, k.losses.Loss) and callable(loss):
        # A loss function (an older Keras saved the loss as a plain string, e.g. "categorical_crossentropy",
        # and tf_keras compiles it to that function): its name, when tf_keras knows it. tf_keras'
        # serialize() would give {"module": "builtins", "class_name": "function", ...}, which get() refuses.
        name = getattr(loss, "__name__", None)
        try:
            if name and k.losses.get(name) is not None:
                return name
        except Exception:  # noqa: BLE001 - not a built-in: tried below
            pass
    if isinstance(loss, k.losses.Loss) or callable(loss) and getattr(loss, "__module__", "").startswith("tf_keras"):
        try:
            return k.losses.serialize(loss)
        except Exception:  # noqa: BLE001 - an unserializable custom loss counts as none
            return None
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)   # a Keras 3 loss or function
    try:
        k.losses.get(name)
    except Exception:  # noqa: BLE001 - not a built-in tf_keras knows
        return None
    return name


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
        outputs = getattr(model, "output", None)
        if isinstance(loss, dict) and isinstance(outputs, dict) and set(loss) == set(outputs):
            loss_obj = {n: _ids_loss(k.losses.get(v)) for n, v in loss.items()}   # dict outputs: by key
        elif isinstance(loss, dict):    # per output: in output order (tfmot renames wrapped output layers)
            names = [n for n in getattr(model, "output_names", [])]
            values = list(loss.values()) if set(loss) != set(names) else [loss[n] for n in names]
            loss_obj = [_ids_loss(k.losses.get(v)) for v in values]
        elif isinstance(loss, list):
            loss_obj = [_ids_loss(k.losses.get(v)) for v in loss]
        else:
            loss_obj = _ids_loss(k.losses.get(loss))
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()
        raise PolicyError(f"{step}: the loss {loss!r} cannot be rebuilt: {first[0][:200] if first else ''}",
                          field=f"steps.{step}.finetune.loss",
                          hint=f"name the loss in the policy: steps: [{{{step}: {{finetune: {{loss: "
                               "sparse_categorical_crossentropy}}}}] (a tf_keras built-in loss name)") from None
    model.compile(optimizer=optimizer, loss=loss_obj, metrics=["accuracy"])


def _ids_loss(loss: Any) -> Any:
    """The gate feeds class ids (one-hot labels are read as ids, gate.measure.data): a
    categorical crossentropy becomes its sparse twin, the same loss on ids."""
    from gate.measure.tfenv import keras

    k = keras()
    name = getattr(loss, "__name__", None) or getattr(loss, "name", None)
    if isinstance(loss, k.losses.CategoricalCrossentropy) or name == "categorical_crossentropy":
        from_logits = getattr(loss, "get_config", lambda: {})().get("from_logits", False)
        return k.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return loss


def train_steps(n: int, spec: Finetune) -> int:
    """The batches a fine-tune runs: `steps`, or `epochs` passes over n examples, capped by
    `max_steps`."""
    total = spec.steps if spec.steps is not None else spec.epochs * steps_per_epoch(n, spec.batch_size)
    return min(total, spec.max_steps) if spec.max_steps is not None else total


def examples(x: Any) -> int:
    """How many examples fit() gets: x is an array, a list in input order or a dict by name."""
    return int(len(_arrays(x)[0]))


def _arrays(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return list(x.values()) if isinstance(x, dict) else [x]


def _streamed(x: Any) -> bool:
    """Inputs read from disk per batch (memory-mapped or lazily scaled: gate.measure.sources)."""
    return any(not isinstance(a, np.ndarray) or isinstance(a, np.memmap) for a in _arrays(x))


def batches(k: Any, model: Any, x: Any, y: Any, batch_size: int, seed: int):
    """A keras Sequence over streamed inputs: shuffled batches (seeded, reshuffled every
    epoch), float inputs as float32, so only one batch is in memory at a time."""
    dtypes = [str(getattr(getattr(t, "dtype", None), "name", getattr(t, "dtype", "float32"))) for t in
              getattr(model, "inputs", None) or []]

    def take(a, idx, dtype="float32"):
        part = np.asarray(a[idx]) if not isinstance(a, np.ndarray) or isinstance(a, np.memmap) else a[idx]
        return part.astype(np.float32) if np.issubdtype(part.dtype, np.floating) and dtype.startswith(
            ("float", "bfloat")) else part

    class Batches(k.utils.Sequence):
        def __init__(self):
            super().__init__()
            self.n = examples(x)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(self.n)

        def __len__(self):
            return -(-self.n // batch_size)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            xs = [take(a, idx, dtypes[j] if j < len(dtypes) else "float32") for j, a in enumerate(_arrays(x))]
            feed = dict(zip(x, xs)) if isinstance(x, dict) else xs if isinstance(x, (list, tuple)) else xs[0]
            if isinstance(y, dict):
                target = {key: v[idx] for key, v in y.items()}
            elif isinstance(y, (list, tuple)):
                target = [v[idx] for v in y]
            else:
                target = y[idx]
            return feed, target

        def on_epoch_end(self):
            self.order = self.rng.permutation(self.n)

    return Batches()


def fit(model: Any, spec: Finetune, x: Any, y: Any, callbacks: list | None = None, *,
        ctx: Any = None) -> None:
    """Fine-tune on the train split as fit() takes it (gate.optimize.context.StepContext:
    inputs in their own dtypes, by name for several; targets in output order) for the budget
    (train_steps), with BatchNormalization momentum lowered to spec.bn_momentum for the
    duration and one progress line per epoch through ctx.progress."""
    from gate.measure.tfenv import keras

    k = keras()
    n = examples(x)
    total = train_steps(n, spec)
    if total == 0:
        return
    per_epoch = steps_per_epoch(n, spec.batch_size)
    epochs = -(-total // per_epoch)
    k.utils.set_random_seed(spec.seed)
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if isinstance(y, dict) and isinstance(getattr(model, "output", None), (list, tuple)):
        y = list(y.values())
    extra = [_budget(k, total)] if total < epochs * per_epoch else []
    if ctx is not None:
        extra.append(_progress(k, ctx.label, epochs, ctx.progress))
    changed = lower_bn_momentum(model, spec.bn_momentum)
    try:
        if _streamed(x):
            model.fit(batches(k, model, x, y, spec.batch_size, spec.seed), epochs=epochs, shuffle=False, verbose=0,
                      callbacks=[*(callbacks or []), *extra])
        else:
            model.fit(x, y, epochs=epochs, batch_size=spec.batch_size, shuffle=True, verbose=0,
                      callbacks=[*(callbacks or []), *extra])
    except (ValueError, TypeError) as exc:   # Keras refusing the targets or the loss for this model
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise PolicyError(f"fine-tuning failed: {type(exc).__name__}: {lines[-1][:300] if lines else ''}",
                          field="steps", hint="check that the loss fits the model's outputs and data.train's "
                                              "targets (set finetune.loss in the step)") from None
    finally:
        for layer, momentum in changed:
            layer.momentum = momentum


def batch_norms(model: Any) -> list[Any]:
    """Every BatchNormalization of the model: inside tfmot wrappers and nested models too."""
    from gate.measure.tfenv import keras
    from gate.optimize.roles import unwrap

    k = keras()
    found = []
    for layer in model.layers:
        inner = unwrap(layer)
        if isinstance(inner, k.Model):
            found.extend(batch_norms(inner))
        elif isinstance(inner, k.layers.BatchNormalization):
            found.append(inner)
    return found


def lower_bn_momentum(model: Any, momentum: float | None) -> list[tuple[Any, float]]:
    """Set each BatchNormalization's momentum to `momentum` where it is higher; returns
    [(layer, old momentum)] to restore."""
    if momentum is None:
        return []
    changed = []
    for bn in batch_norms(model):
        if bn.momentum > momentum:
            changed.append((bn, bn.momentum))
            bn.momentum = momentum
    return changed


def _budget(k: Any, total: int) -> Any:
    class Budget(k.callbacks.Callback):
        """Stop after `total` batches (a step budget that ends inside an epoch)."""

        def __init__(self) -> None:
            super().__init__()
            self.done = 0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.done += 1
            if self.done >= total:
                self.model.stop_training = True

    return Budget()


def _progress(k: Any, label: str, epochs: int, progress: Any) -> Any:
    import time

    class EpochProgress(k.callbacks.Callback):
        """One line per epoch: `step 1/3 prune: epoch 2/8, loss 0.41, 3.2 s`."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            figure = f", loss {loss:.3g}" if isinstance(loss, (int, float)) else ""
            progress(f"{label + ': ' if label else ''}epoch {epoch + 1}/{epochs}{figure}, "
                     f"{time.perf_counter() - self.start:.1f} s")

    return EpochProgress()


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))
