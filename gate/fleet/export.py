"""`gate export --out dist/`: the gated .tflite files and a manifest, for a release.

Export does not run the gate again: it takes the candidates the gate wrote next to its
reports (gate-report/NAME/candidate.tflite, or gate-report/candidate.tflite for one
model), because those are the exact bytes that were judged (a re-run may produce other
bytes: fine-tuning is not bit-reproducible). Each candidate's sha256 must equal the one
its report recorded, and the reports must be of the current gate.yml (its sha256), or
nothing is exported (exit 2). A model that did not pass is left out unless
`--allow-failing`, which exports it marked `"passed": false`; a model without a
candidate (an error) is never exported. The manifest lists, per model: file, sha256,
size, the policy as resolved, the metrics and checks, the base it was compared with, the
tool versions and the gate.yml digest.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from gate import provenance
from gate.errors import BadInputError
from gate.report.combined import is_combined
from gate.report.load import read_report
from gate.report.write import REPORT_JSON, atomic_write
from gate.run.protocol import CANDIDATE_FILE

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclass
class Exported:
    manifest: dict
    exported: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)   # name -> why

    @property
    def exit_code(self) -> int:
        """0 when every model was exported; 1 when one was left out (a release should not
        ship without it)."""
        return 1 if self.left_out else 0


def _models(report_dir: Path) -> list[tuple[str, dict | None, Path]]:
    """(name, report or None, candidate path) of every model under report_dir, in the
    combined report's order (None: the model has a row but no report)."""
    path = report_dir / REPORT_JSON
    if not path.is_file():
        raise BadInputError("no report.json: run `gate check` (or `gate report merge`) first", file=str(path))
    top = read_report(path)
    if is_combined(top):
        return [(row["name"], top["reports"].get(row["name"]), report_dir / row["name"] / CANDIDATE_FILE)
                for row in top["rows"]]
    model = (top.get("config") or {}).get("model") or "model"
    return [(top.get("name") or Path(model).stem or "model", top, report_dir / CANDIDATE_FILE)]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def entry(report: dict, file: str, sha256: str, size: int, passed: bool) -> dict:
    cand = report.get("candidate") or {}
    baseline = report.get("baseline") or {}
    return {
        "file": file, "sha256": sha256, "bytes": size, "status": report["status"], "passed": passed,
        "policy": report.get("policy"),
        "quantization": cand.get("quantization"), "io": cand.get("io"),
        "metrics": {"examples": (cand.get("evaluation") or {}).get("examples"),
                    "accuracy": (cand.get("evaluation") or {}).get("accuracy"),
                    "metrics": (cand.get("evaluation") or {}).get("metrics"),
                    "latency_p50_ms": (cand.get("latency") or {}).get("p50_ms")},
        "checks": [{k: c.get(k) for k in ("name", "value", "limit", "direction", "passed", "outcome")}
                   for c in report.get("checks") or []],
        "base": ({"sha": baseline.get("sha"), "chosen": baseline.get("chosen"),
                  "candidate_sha256": (baseline.get("candidate") or {}).get("sha256")} if baseline else None),
        "versions": report.get("versions"),
        "gate_yml_sha256": (report.get("config") or {}).get("sha256"),
        "report_created_at": report.get("created_at"),
    }


def export(report_dir: Path, out_dir: Path, *, config: Path | None = None, allow_failing: bool = False) -> Exported:
    models = _models(report_dir)
    config_sha = hashlib.sha256(config.read_bytes()).hexdigest() if config is not None and config.is_file() else None
    for name, report, _ in models:
        made_with = ((report or {}).get("config") or {}).get("sha256")
        if config_sha and made_with and made_with != config_sha:
            raise BadInputError(f"the report of {name!r} was made with another gate.yml (sha256 {made_with[:12]}, "
                                f"this one is {config_sha[:12]})", file=str(config),
                                hint="run `gate check` again on this commit before exporting")
    result = Exported(manifest={})
    plan: list[tuple[str, Path, dict]] = []
    for name, report, candidate in models:
        if report is None:
            result.left_out[name] = "no report"
            continue
        if report["status"] == "error" or not report.get("candidate"):
            result.left_out[name] = f"no candidate: the gate ended in an error ({report['summary'][:200]})"
            continue
        if report["status"] != "pass" and not allow_failing:
            result.left_out[name] = f"failed its thresholds ({report['summary'][:200]}); --allow-failing exports it"
            continue
        if not candidate.is_file():
            raise BadInputError("the candidate the report names is not there", file=str(candidate),
                                hint="export from the directory `gate check` wrote (with its candidate.tflite)")
        digest = _sha256(candidate)
        if digest != report["candidate"]["sha256"]:
            raise BadInputError(f"candidate.tflite's sha256 is {digest[:12]}, its report says "
                                f"{report['candidate']['sha256'][:12]}: not the file that was gated",
                                file=str(candidate))
        plan.append((name, candidate, report))
    models_out = {}
    for name, candidate, report in plan:
        content = candidate.read_bytes()
        file = f"{name}.tflite"
        atomic_write(out_dir / file, content)
        models_out[name] = entry(report, file, hashlib.sha256(content).hexdigest(), len(content),
                                 report["status"] == "pass")
        result.exported.append(name)
    gate_yml = next((m["gate_yml_sha256"] for m in models_out.values() if m["gate_yml_sha256"]), config_sha)
    result.manifest = {"manifest_version": MANIFEST_VERSION, "tool": "model-gate", "created_at": provenance.now(),
                       "gate_yml_sha256": gate_yml, "exporter_versions": provenance.versions(),
                       "allow_failing": allow_failing, "models": models_out, "not_exported": result.left_out}
    atomic_write(out_dir / MANIFEST, json.dumps(result.manifest, indent=2) + "\n")
    return result
