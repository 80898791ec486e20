"""The report's parts -> the report, validated against gate.report.model.Report (the parts
come from gate.run.parts). No TF."""
from __future__ import annotations

from pydantic import ValidationError

from gate import provenance
from gate.errors import GateError
from gate.report.model import Report


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
        keep = {k: report.get(k) for k in _ALWAYS}
        keep["notes"] = [f"partial results dropped from this error report: {exc.error_count()} invalid field(s)"]
        return Report.model_validate(keep).model_dump(mode="json")


_ALWAYS = ("created_at", "status", "exit_code", "summary", "name", "versions", "environment", "error")
