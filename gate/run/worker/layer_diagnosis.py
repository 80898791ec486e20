"""The candidate's per-layer table (the run record's `layers`) and what keep_float kept
(`keep_float`), kept in the record during the measurement, so the cache keeps them with
it (gate.run.worker.cached). Only the pull request's candidate is diagnosed (not the base's), and
only a quantized one; a diagnosis that fails costs a note, never the run."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from gate.errors import GateError
from gate.measure.convert import Converted
from gate.measure.data import Split
from gate.run.stagelog import StageLog


def diagnose_candidate(log: StageLog, cand: Converted, float_reference: Callable[[], bytes | None],
                       eval_split: Split, keras_layers: Sequence[str] = ()) -> None:
    """The pull request's candidate only (gate.run.worker.candidate calls it for Branch.PR).
    `float_reference()`: the float .tflite the candidate was quantized from (called only
    when the candidate is quantized: it may convert)."""
    if cand.fallback is not None:
        log.keep(keep_float=cand.fallback)
        log.note(keep_float_note(cand.fallback))
    if cand.precision in (None, "float") and cand.fallback is None:
        return
    from gate.measure.layers import coverage, diagnose

    with log.stage("layers", "diagnosing the candidate layer by layer"):
        try:
            rows = diagnose(cand.content, float_reference(), eval_split.x, keras_layers=keras_layers,
                            kept=(cand.fallback or {}).get("kept", ()), quantizer=cand.quantizer,
                            debug_model=cand.debug_model)
        except (GateError, RuntimeError, ValueError, OSError) as exc:
            log.note(f"the per-layer diagnosis failed ({type(exc).__name__}: {str(exc)[:200]}); report.json has "
                     "no layers table")
            return
    log.keep(layers=[r.to_dict() for r in rows])
    measured, quantized = coverage(rows)
    if quantized and measured < quantized:
        log.note(f"per-layer error measured for {measured} of {quantized} quantized ops (the others' tensors have "
                 "no same-named float counterpart)")


def keep_float_note(fallback: dict) -> str:
    """One line: what convert.keep_float kept float, by which rule."""
    kept = [f"{name.split(';')[0]} ({rule})" for name, rule in fallback.get("by_rule", {}).items()]
    shown = ", ".join(kept[:6]) + (f" and {len(kept) - 6} more" if len(kept) > 6 else "")
    how = "with int16 activations" if fallback.get("activations") == "int16" else "float"
    text = (f"convert.keep_float kept {len(kept)} op(s) {how}: {shown}" if kept
            else f"convert.keep_float kept no op {how}")
    wanted = fallback.get("worst") or 0
    found = sum(1 for rule in fallback.get("by_rule", {}).values() if rule == "worst")
    if wanted > found:
        other = "any other" if found else "any"
        text += (f"; worst: {wanted} asked, {found} kept: keeping {other} ranked op float alone recovered "
                 "nothing on the calibration examples (a kept op still reads and writes int8 tensors; a regex "
                 "matching a whole block keeps the tensors inside it float)")
    if fallback.get("ranking"):
        base = fallback.get("baseline") or {}
        text += (f"; worst ranked by ablation of {len(fallback['ranking'])} ops on {fallback.get('examples')} "
                 f"calibration examples (all int8: agreement {base.get('agreement')}, output SNR "
                 f"{base.get('output_snr_db')} dB) in {fallback.get('seconds')} s")
    return text
