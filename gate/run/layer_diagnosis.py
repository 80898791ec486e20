"""The candidate's per-layer table (report.json `layers`) and what keep_float kept
(`keep_float`), written into the report's parts during the measurement, so the cache
keeps them with it. Only the pull request's candidate is diagnosed (not the base's), and
only a quantized one; a diagnosis that fails costs a note, never the run."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from gate.errors import GateError
from gate.measure.convert import Converted
from gate.measure.data import Split


def diagnose_candidate(log, parts: dict, cand: Converted, float_reference: Callable[[], bytes | None],
                       eval_split: Split, keras_layers: Sequence[str] = (), *, label: str = "",
                       tag: str = "") -> None:
    """`float_reference()`: the float .tflite the candidate was quantized from (called only
    when the candidate is quantized: it may convert)."""
    if label:
        return
    if cand.fallback is not None:
        parts["keep_float"] = cand.fallback
        log.note(keep_float_note(cand.fallback))
    if cand.precision in (None, "float") and cand.fallback is None:
        return
    from gate.measure.layers import coverage, diagnose

    with log.stage(f"{tag}layers", "diagnosing the candidate layer by layer"):
        try:
            rows = diagnose(cand.content, float_reference(), eval_split.x, keras_layers=keras_layers,
                            kept=(cand.fallback or {}).get("kept", ()), quantizer=cand.quantizer,
                            debug_model=cand.debug_model)
        except (GateError, RuntimeError, ValueError, OSError) as exc:
            log.note(f"the per-layer diagnosis failed ({type(exc).__name__}: {str(exc)[:200]}); report.json has "
                     "no layers table")
            return
    parts["layers"] = [r.to_dict() for r in rows]
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
