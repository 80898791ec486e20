"""The report data model: report.json's schema (versioned), validated on read and write.

`gate report ...` commands and the PR comment work from report.json alone, so a report
coming from an artifact is untrusted data: Report.model_validate_json checks it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.report.record import Artifact, Evaluation, KeepFloatInfo, KeptOp, LayerRow, RunRecord

__all__ = ["SCHEMA_VERSION", "Artifact", "ErrorInfo", "Evaluation", "KeepFloatInfo", "KeptOp", "LayerRow", "Report",
           "json_schema"]

SCHEMA_VERSION = 1


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_M):
    kind: str
    message: str
    file: str | None = None
    field: str | None = None
    line: int | None = None
    hint: str | None = None
    exit_code: int


class Report(RunRecord):
    """report.json: the run's header (status, exit code, versions, environment) and its
    record (gate.report.record.RunRecord, the sections the parent and the worker filled)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    tool: str = "model-gate"
    created_at: str
    status: Literal["pass", "fail", "error"]
    exit_code: int = Field(ge=0, le=255)
    summary: str
    versions: dict[str, str]
    environment: dict[str, str | int | None]
    error: ErrorInfo | None = None


def json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"model-gate report v{SCHEMA_VERSION}"
    return schema
