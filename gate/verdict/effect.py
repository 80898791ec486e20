"""A check no threshold configures: a quantizing policy must have changed the model. A
candidate whose every tensor has the reference's type and quantization ships what was
there before, so the run fails with the reason read from the file
(gate.measure.tflite_tensors.policy_effect) instead of passing every threshold at 200 dB."""
from __future__ import annotations

from gate.verdict.check import Check

NAME = "policy.effect"


def effect_checks(reference: bytes, candidate: bytes, what: str | None) -> list[Check]:
    """[] when the policy quantizes nothing by design (`what` None) or changed a tensor;
    else one failed check saying why nothing changed."""
    if what is None:
        return []
    from gate.measure.tflite_tensors import policy_effect

    effect = policy_effect(reference, candidate, what)
    if not effect.none:
        return []
    return [Check(name=NAME, metric=f"tensors {what} quantized", value=0, limit=1, direction=">=", unit="count",
                  passed=False, detail=effect.reason + "; the candidate is the reference again (choose a policy "
                  "that applies to this model, or remove `policy` to gate it as it is)")]
