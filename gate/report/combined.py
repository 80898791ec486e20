"""The combined report of a gate.yml with `models:`: one verdict, one exit code, a summary
row per model (model, verdict, size, change vs base, accuracy drop, latency ratio) and each
model's own report. `gate check` writes it to gate-report/report.json after the per-model
reports in gate-report/NAME/; `gate report merge` builds it from matrix legs' reports. A
model that did not produce a report (a leg that crashed, was cancelled or never uploaded)
is an error row, never a missing one. No TF.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate import provenance
from gate.errors import EXIT_FAIL, EXIT_INTERNAL, EXIT_PASS, BadInputError
from gate.report.model import SCHEMA_VERSION, Report

KIND = "combined"
NO_REPORT = ("no report: the model's run or matrix leg ended before writing one (crashed, timed out or "
             "cancelled), or its artifact was not downloaded")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Row(_M):
    """One model in the summary table."""

    name: str
    status: Literal["pass", "fail", "error"]
    exit_code: int = Field(ge=0, le=255)
    summary: str
    size_bytes: int | None = None              # the candidate .tflite, raw bytes
    size_change_vs_base: float | None = None   # candidate bytes / the base branch candidate's - 1
    accuracy_drop: float | None = None         # original top-1 - candidate top-1 (fraction; + is a loss)
    latency_ratio: float | None = None         # candidate p50 / reference p50, same run
    policy: str | None = None


class CombinedReport(_M):
    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["combined"] = KIND
    tool: str = "model-gate"
    created_at: str
    status: Literal["pass", "fail", "error"]
    exit_code: int = Field(ge=0, le=255)
    summary: str
    config_sha256: str | None = None           # gate.yml's digest, the same for every model
    versions: dict[str, str]
    rows: list[Row] = []
    reports: dict[str, Report] = {}            # each model's report.json, by name
    notes: list[str] = []


def is_combined(report: dict) -> bool:
    return isinstance(report, dict) and report.get("kind") == KIND


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def row_of(name: str, report: dict) -> Row:
    cand, ref = report.get("candidate") or {}, report.get("reference") or {}
    base_cand = (report.get("baseline") or {}).get("candidate") or {}
    size, base_size = _num(cand.get("bytes_raw")), _num(base_cand.get("bytes_raw"))
    top1 = lambda ev: _num(((ev or {}).get("accuracy") or {}).get("top1"))  # noqa: E731
    orig_acc, cand_acc = top1(report.get("original")), top1(cand.get("evaluation"))
    p50 = lambda art: _num((art.get("latency") or {}).get("p50_ms"))  # noqa: E731
    cand_p50, ref_p50 = p50(cand), p50(ref)
    return Row(name=name, status=report["status"], exit_code=report["exit_code"], summary=report["summary"],
               size_bytes=None if size is None else int(size),
               size_change_vs_base=size / base_size - 1 if size is not None and base_size else None,
               accuracy_drop=orig_acc - cand_acc if orig_acc is not None and cand_acc is not None else None,
               latency_ratio=cand_p50 / ref_p50 if cand_p50 is not None and ref_p50 else None,
               policy=(report.get("policy") or {}).get("name"))


def missing_row(name: str) -> Row:
    return Row(name=name, status="error", exit_code=EXIT_INTERNAL, summary=NO_REPORT)


def verdict(rows: list[Row]) -> tuple[str, int, str]:
    """One status, exit code and summary line for all rows: any error is an error (the
    highest error code), else any failure fails."""
    if not rows:
        return "pass", EXIT_PASS, "no model's inputs changed: nothing needed gating"
    errors = [r for r in rows if r.status == "error"]
    failed = [r for r in rows if r.status == "fail"]
    counts = ", ".join(f"{n} {s}" for s, n in (("pass", len(rows) - len(errors) - len(failed)),
                                                ("fail", len(failed)), ("error", len(errors))) if n)
    names = "; ".join(f"{r.name}: {r.status}" for r in (*errors, *failed))
    text = f"{len(rows)} model{'s' if len(rows) != 1 else ''}: {counts}" + (f" ({names})" if names else "")
    if errors:
        return "error", max(r.exit_code for r in errors) or EXIT_INTERNAL, text
    if failed:
        return "fail", EXIT_FAIL, text
    return "pass", EXIT_PASS, text


def combine(reports: dict[str, dict | None], *, config_sha256: str | None = None,
            notes: list[str] | None = None) -> dict:
    """The combined report of per-model reports (None: the model produced none), in the
    given order. Returns plain JSON-ready data, validated."""
    rows = [row_of(name, r) if r is not None else missing_row(name) for name, r in reports.items()]
    status, code, summary = verdict(rows)
    shas = {(r.get("config") or {}).get("sha256") for r in reports.values() if r}
    combined = CombinedReport(
        created_at=provenance.now(), status=status, exit_code=code, summary=summary,
        config_sha256=config_sha256 or next((s for s in shas if s), None),
        versions=next((r["versions"] for r in reports.values() if r), provenance.versions()),
        rows=rows, reports={n: r for n, r in reports.items() if r is not None}, notes=list(notes or []))
    return combined.model_dump(mode="json")


def read_combined(path: Path, data: bytes) -> dict:
    try:
        return CombinedReport.model_validate_json(data).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"not a valid model-gate combined report: {first['msg']}", file=str(path),
                            field=".".join(str(p) for p in first["loc"]) or None) from None


def model_reports(report: dict) -> list[dict]:
    """The per-model reports inside a combined report, or the report itself."""
    return list(report.get("reports", {}).values()) if is_combined(report) else [report]


def combined_digest(report: dict) -> str:
    """What a combined result *is* (for the comment's on-change mode): each row's verdict and
    each model's checks, candidate and config; timing noise left out."""
    key = [(r["name"], r["status"], r["exit_code"]) for r in report.get("rows") or []]
    for name, rep in sorted((report.get("reports") or {}).items()):
        key.append((name, [(c["name"], c["passed"], c["limit"]) for c in rep.get("checks") or []],
                    (rep.get("candidate") or {}).get("sha256"), (rep.get("config") or {}).get("sha256")))
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


_HEADING = re.compile(r"^(#{2,3}) ", re.MULTILINE)


def demote_headings(markdown: str) -> str:
    """A model's report inside the combined one: its ## and ### become #### and #####."""
    return _HEADING.sub(lambda m: "##" + m.group(1) + " ", markdown)
