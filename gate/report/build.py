"""Stage results -> the report dict (validated against report.model.Report)."""
from __future__ import annotations

import gzip
import hashlib

from gate import provenance
from gate.errors import GateError
from pydantic import ValidationError

from gate.report.model import Report


def tflite_sizes(content: bytes) -> dict:
    return {"bytes_raw": len(content), "bytes_gzip": len(gzip.compress(content, compresslevel=9, mtime=0)),
            "sha256": hashlib.sha256(content).hexdigest()}


def finish(parts: dict, *, status: str, exit_code: int, summary: str, error: GateError | None = None) -> dict:
    """Assemble, validate and return the report as plain JSON-ready data."""
    report = {
        "created_at": provenance.now(), "status": status, "exit_code": exit_code, "summary": summary,
        "versions": provenance.versions(), "environment": provenance.environment(),
        **parts,
        "error": error.to_dict() if error else None,
    }
    try:
        return Report.model_validate(report).model_dump(mode="json")
    except ValidationError as exc:
        if error is None:
            raise
        # An error report must always be written: keep only what is known to be valid.
        keep = {k: report[k] for k in _ALWAYS}
        keep["notes"] = [f"partial results dropped from this error report: {exc.error_count()} invalid field(s)"]
        return Report.model_validate(keep).model_dump(mode="json")


_ALWAYS = ("created_at", "status", "exit_code", "summary", "versions", "environment", "error")
