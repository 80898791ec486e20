"""`gate report merge DIR...`: the per-model reports of matrix legs (each leg ran
`gate check --model NAME` and uploaded its gate-report/) -> one combined report and one
exit code. The reports are untrusted artifacts (validated on read). Refused (exit 2):
reports made by different gate versions or from different gate.yml files, two reports for
one model, a report that names no model, a model outside --expect. A model in --expect
without a report is an error row that names it.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from gate.errors import BadInputError
from gate.report.combined import combine, is_combined
from gate.report.load import read_report
from gate.report.write import REPORT_JSON, REPORT_MD, write_report
from gate.run.protocol import CANDIDATE_FILE

GATE_DIST = "model-gate"


@dataclass(frozen=True)
class Found:
    name: str
    path: Path           # its report.json
    report: dict


def parse_expect(text: str | None) -> list[str] | None:
    """--expect: the JSON list `gate models --json` printed (or names separated by commas)."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise BadInputError(f"expected a JSON list of model names, got {text[:80]!r} ({exc})",
                                field="--expect") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadInputError(f"expected a JSON list of model names, got {text[:80]!r}", field="--expect")
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise BadInputError(f"a model is listed twice: {names}", field="--expect")
    return names


def find_reports(dirs: list[Path]) -> list[Found]:
    """Every per-model report.json in DIR or one level below it (combined reports skipped)."""
    found: list[Found] = []
    for d in dirs:
        if not d.is_dir():
            raise BadInputError("expected a directory holding a leg's report (gate-report/ or its parent)",
                                file=str(d))
        for path in [d / REPORT_JSON, *sorted(d.glob(f"*/{REPORT_JSON}"))]:
            if not path.is_file():
                continue
            report = read_report(path)
            if is_combined(report):
                continue
            if not report.get("name"):
                raise BadInputError("the report names no model: it is from a single-model gate.yml, which "
                                    "needs no merge", file=str(path), field="name",
                                    hint="list the models under `models:` and run `gate check --model NAME`")
            found.append(Found(report["name"], path, report))
    return found


def _same(found: list[Found], what: str, value) -> None:
    seen: dict[str, list[str]] = {}
    for f in found:
        v = value(f.report)
        if v is not None:
            seen.setdefault(str(v), []).append(f"{f.name} ({f.path})")
    if len(seen) > 1:
        groups = "; ".join(f"{v[:16]}: {', '.join(names)}" for v, names in seen.items())
        raise BadInputError(f"the reports come from different {what}: {groups}",
                            hint="merge the legs of one workflow run: every leg checks out the same commit and "
                                 "runs the same gate")


def merge_reports(dirs: list[Path], out_dir: Path, expect: list[str] | None = None) -> dict:
    """Validate, combine, write OUT/report.json + report.md and each model's files to
    OUT/NAME/ (when they are elsewhere). Returns the combined report."""
    found = find_reports(dirs)
    by_name: dict[str, Found] = {}
    for f in found:
        if f.name in by_name:
            raise BadInputError(f"two reports for model {f.name!r}: {by_name[f.name].path} and {f.path}",
                                field="name", hint="give each matrix leg's artifact its own directory")
        by_name[f.name] = f
    _same(found, "gate versions", lambda r: (r.get("versions") or {}).get(GATE_DIST))
    _same(found, "gate.yml files (sha256)", lambda r: (r.get("config") or {}).get("sha256"))
    if expect is not None:
        extra = sorted(set(by_name) - set(expect))
        if extra:
            raise BadInputError(f"reports for models not in --expect: {', '.join(extra)} "
                                f"(expected: {', '.join(expect) or 'none'})", field="--expect")
        names = list(expect)
    else:
        if not found:
            raise BadInputError(f"no report.json in {', '.join(map(str, dirs))}",
                                hint="pass the directories the legs' artifacts were downloaded to, and --expect "
                                     "with the models the legs ran")
        names = sorted(by_name)
    for name in names:
        if name in by_name:
            _copy_model_dir(by_name[name].path.parent, out_dir / name)
    combined = combine({n: by_name[n].report if n in by_name else None for n in names})
    write_report(combined, out_dir)
    return combined


def _copy_model_dir(src: Path, dst: Path) -> None:
    """A model's report, report.md and candidate.tflite next to the combined report."""
    if dst.resolve() == src.resolve():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in (REPORT_JSON, REPORT_MD, CANDIDATE_FILE):
        if (src / name).is_file() and not (src / name).is_symlink():
            shutil.copyfile(src / name, dst / name)
