"""The per-layer table as the renderings show it (report.md, the PR comment, the terminal):
the worst few ops by error and by size share, and — when an accuracy or fidelity check
failed — what to try: keep the worst layer float, or search with `gate tune`. `gate check`
never tunes by itself. Works on report.json data alone (no TF)."""
from __future__ import annotations

import os
import re
from pathlib import Path

SHOWN = 5
BOUNDARY = ("QUANTIZE", "DEQUANTIZE")
TUNE_BUDGET_MINUTES = 25


def _rows(report: dict) -> list[dict]:
    rows = report.get("layers") or []
    return [r for r in rows if isinstance(r, dict)]


def worst_by_error(report: dict, n: int = SHOWN) -> list[dict]:
    """The n compute ops with the lowest SNR at their output."""
    scored = [r for r in _rows(report) if isinstance(r.get("snr_db"), (int, float)) and r.get("op") not in BOUNDARY]
    return sorted(scored, key=lambda r: (r["snr_db"], -(r.get("bytes") or 0)))[:n]


def worst_by_size(report: dict, n: int = SHOWN) -> list[dict]:
    """The n ops holding the largest share of the file."""
    return sorted((r for r in _rows(report) if r.get("bytes")), key=lambda r: -r["bytes"])[:n]


def layer_label(row: dict) -> str:
    """The Keras layer, or the op's first tensor name (shortened)."""
    if row.get("layer"):
        return str(row["layer"])
    name = str(row.get("name") or "").split(";")[0]
    return name if len(name) <= 60 else "…" + name[-59:]


def layer_regex(row: dict) -> str:
    """A keep_float regex that selects this op (its Keras layer name exactly, else its first
    tensor name)."""
    if row.get("layer"):
        return f"^{re.escape(str(row['layer']))}$"
    return re.escape(str(row.get("name") or "").split(";")[0])


def coverage(report: dict) -> tuple[int, int]:
    """(quantized compute ops with an SNR, quantized compute ops)."""
    q = [r for r in _rows(report) if r.get("quantized") and r.get("op") not in BOUNDARY]
    return sum(1 for r in q if r.get("snr_db") is not None), len(q)


def quality_failures(report: dict) -> list[str]:
    """Failed accuracy / metric (fidelity, error) checks: what a layer can explain."""
    return [str(c.get("name")) for c in report.get("checks") or []
            if isinstance(c, dict) and not c.get("passed") and c.get("outcome") not in ("not_judged", "not_applicable")
            and str(c.get("name", "")).split(".")[0] in ("accuracy", "metrics")]


def tune_command(report: dict) -> str:
    path = str((report.get("config") or {}).get("path") or "gate.yml")
    p = Path(path)
    if p.is_absolute():
        try:
            path = os.path.relpath(p)
        except ValueError:
            path = p.name
        if path.startswith(".."):
            path = p.name
    return f"gate tune --config {path} --budget-minutes {TUNE_BUDGET_MINUTES}"


def _keep_float_applies(report: dict) -> bool:
    cand = report.get("candidate") or {}
    return cand.get("quantizer") == "litert" or cand.get("quantization") == "int8"


def advice(report: dict) -> dict | None:
    """What to try when an accuracy or fidelity check failed: {failed, worst (row | None),
    largest (row | None), keep_float (a YAML line | None), tune (the command)}."""
    failed = quality_failures(report)
    if not failed or report.get("status") != "fail":
        return None
    worst = next(iter(worst_by_error(report, 1)), None)
    largest = next(iter(worst_by_size(report, 1)), None)
    keep = int16 = None
    if worst is not None and _keep_float_applies(report):
        keep = f'convert: {{keep_float: {{layers: ["{layer_regex(worst)}"]}}}}'
    if worst is not None and (report.get("candidate") or {}).get("quantization") in ("int8", "static_wi8_ai8"):
        int16 = (f'convert: {{quantizer: litert, keep_float: {{layers: ["{layer_regex(worst)}"], '
                 'activations: int16}}')
    return {"failed": failed, "worst": worst, "largest": largest, "keep_float": keep, "int16": int16,
            "tune": tune_command(report)}


def advice_lines(report: dict) -> list[str]:
    """The same advice as plain sentences (the terminal)."""
    a = advice(report)
    if a is None:
        return []
    lines = []
    if a["worst"] is not None:
        w = a["worst"]
        rps = f", rmse/scale {w['rmse_per_scale']:.3g}" if isinstance(w.get("rmse_per_scale"), (int, float)) else ""
        lines.append(f"worst layer by quantization error: {layer_label(w)} ({w.get('op')}, SNR {w['snr_db']:.1f} dB"
                     f"{rps})")
    if a["largest"] is not None:
        big = a["largest"]
        lines.append(f"largest layer: {layer_label(big)} ({big.get('op')}, {100 * (big.get('share') or 0):.1f} % of "
                     "the file)")
    if a["keep_float"]:
        lines.append(f"try keeping it float in the policy: {a['keep_float']} (or keep_float: {{worst: 3}} to rank "
                     "ops by measured harm)")
    if a["int16"]:
        lines.append(f"or int16 activations there, int8 weights (LiteRT Quantizer): {a['int16']}")
    lines.append(f"or search for a passing policy: {a['tune']} (gate check never tunes by itself)")
    return lines
