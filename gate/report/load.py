"""Read a report.json (possibly from an untrusted artifact) and validate it."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from gate.errors import BadInputError
from gate.report.combined import KIND, read_combined
from gate.report.model import Report

MAX_REPORT_BYTES = 64 * 1024 * 1024


def read_report(path: Path) -> dict:
    """A report.json: one model's, or the combined report of a gate.yml with `models:`."""
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise BadInputError(f"report is {size} bytes, more than the {MAX_REPORT_BYTES} allowed", file=str(path))
    data = path.read_bytes()
    try:
        top = json.loads(data)
    except ValueError as exc:
        raise BadInputError(f"not a valid model-gate report: not JSON ({exc})", file=str(path)) from None
    if isinstance(top, dict) and top.get("kind") == KIND:
        return read_combined(path, data)
    try:
        return Report.model_validate_json(data).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"not a valid model-gate report: {first['msg']}", file=str(path),
                            field=field or None) from None
