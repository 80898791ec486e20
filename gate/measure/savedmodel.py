"""SavedModel directories (only under trust_model_code: gate.scan.savedmodel), loaded as
what they are.

- A Keras SavedModel (tf_keras wrote keras_metadata.pb): loaded with tf_keras. When its
  training setup cannot be rebuilt (a custom `<lambda>` loss, an optimizer that no longer
  exists), it is loaded without it (`compile=False`): inference, conversion and every
  post-training policy work; fine-tuning steps then need `finetune.loss` in the policy.
- A plain TensorFlow SavedModel (a tf.Module with @tf.function signatures, no Keras
  model): converted to a float32 .tflite through its serving signature
  (`serving_default`, else its only signature) and measured like a committed .tflite:
  that conversion is the reference, post-training policies quantize it with LiteRT
  Quantizer; tfmot steps need a Keras model and are refused (gate.run.worker.candidate).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gate.errors import ModelError

KERAS_METADATA = "keras_metadata.pb"
SERVING = "serving_default"


def is_keras_savedmodel(path: Path) -> bool:
    return (path / KERAS_METADATA).is_file()


def load_without_failing_compile(path: Path, k: Any, what: str) -> tuple[Any, str | None]:
    """(tf_keras model, note or None) of a Keras SavedModel or .h5. compile=True first; a
    training setup that cannot be rebuilt (a custom `<lambda>` loss, an optimizer that no
    longer exists) is dropped, the note says why, instead of refusing the model. An .h5's
    loss, when its training_config names a built-in one, is kept for fine-tuning."""
    try:
        return k.models.load_model(path, compile=True), None
    except Exception as exc:  # noqa: BLE001 - retried without the training setup below
        first = _first_line(exc).split(". ")[0]
    try:
        model = k.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - every loader failure is the model's fault
        raise ModelError(f"cannot load the {what}: {type(exc).__name__}: {_first_line(exc)}",
                         file=str(path), field="model") from None
    loss = h5_loss(path, k) if path.is_file() else None
    if loss is not None:
        model.loss = loss         # what gate.optimize.finetune.CompileInfo reads
    kept = (f" Its loss {loss!r} (training_config) is kept for fine-tuning." if loss is not None else
            " Fine-tuning steps need finetune.loss in the policy.")
    return model, (f"The {what}'s training setup could not be rebuilt ({first[:200]}): it was loaded without it "
                   f"(compile=False). Post-training policies need nothing more.{kept}")


def h5_loss(path: Path, k: Any) -> Any:
    """The loss an .h5's training_config names (a string, or strings per output), when
    tf_keras knows every one; else None."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("training_config")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else {}
    except Exception:  # noqa: BLE001 - no readable training_config: no loss
        return None
    loss = config.get("loss") if isinstance(config, dict) else None
    names = list(loss.values()) if isinstance(loss, dict) else list(loss) if isinstance(loss, list) else [loss]
    try:
        if not names or not all(isinstance(n, str) and k.losses.get(n) is not None for n in names):
            return None
    except Exception:  # noqa: BLE001 - a name tf_keras does not know
        return None
    return loss


def serving_signature(path: Path) -> str:
    """The signature a plain SavedModel is served through."""
    from gate.measure.tfenv import tf as load_tf

    tf = load_tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load the SavedModel: {type(exc).__name__}: {_first_line(exc)}",
                         file=str(path), field="model") from None
    keys = list(getattr(loaded, "signatures", {}) or {})
    if not keys:
        raise ModelError("the SavedModel has no signature to serve it through (no Keras model in it either)",
                         file=str(path), field="model",
                         hint="save it with signatures={'serving_default': module.fn.get_concrete_function(...)}, "
                              "or commit a .keras/.h5/.tflite")
    return SERVING if SERVING in keys else keys[0]


def convert_plain(path: Path) -> tuple[bytes, str]:
    """(float32 .tflite of the serving signature, the signature key)."""
    from gate.measure.tfenv import tf as load_tf

    tf = load_tf()
    key = serving_signature(path)
    try:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[key])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        content = bytes(conv.convert())
    except Exception as exc:  # noqa: BLE001 - the converter's refusals are about the model
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error:" in ln), lines[0] if lines else "")
        raise ModelError(f"the SavedModel's signature '{key}' does not convert to TFLite builtins: "
                         f"{type(exc).__name__}: {first[:300]}", file=str(path), field="model") from None
    return content, key


def plain_note(name: str, key: str) -> str:
    """What the report says about a plain TF SavedModel measured through its conversion."""
    return (f"{name} is a plain TensorFlow SavedModel (no Keras model in it): it was converted to a float32 "
            f".tflite through its signature '{key}'; that conversion is the reference, and post-training policies "
            "quantize it with LiteRT Quantizer (tfmot steps need a Keras model).")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""
