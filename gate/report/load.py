"""Read a report.json (possibly from an untrusted artifact) and validate it."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from gate.errors import BadInputError
from gate.report.model import Report

MAX_REPORT_BYTES = 64 * 1024 * 1024


def read_report(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise BadInputError(f"report is {size} bytes, more than the {MAX_REPORT_BYTES} allowed", file=str(path))
    try:
        return Report.model_validate_json(path.read_bytes()).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"not a valid model-gate report: {first['msg']}", file=str(path),
                            field=field or None) from None
