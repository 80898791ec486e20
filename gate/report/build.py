"""The run record -> the report: the record (gate.report.record.RunRecord, typed and
validated as it was filled) under the run's header. No TF."""
from __future__ import annotations

from gate import provenance
from gate.errors import GateError
from gate.report.model import Report
from gate.report.record import RunRecord


def finish(record: RunRecord, *, status: str, exit_code: int, summary: str, error: GateError | None = None) -> dict:
    """The report as plain JSON-ready data (report.json)."""
    report = Report(**dict(record), created_at=provenance.now(), status=status, exit_code=exit_code,
                    summary=summary, versions=provenance.versions(), environment=provenance.environment(),
                    error=error.to_dict() if error else None)
    return report.model_dump(mode="json")
