"""Write report.json and report.md atomically (temp file + rename): never half a report."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from gate.report.render import minimal_markdown, render_markdown

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def atomic_write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; reports are for the next CI steps to read
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    json_text = json.dumps(report, indent=2) + "\n"
    try:
        md_text = render_markdown(report)  # both rendered before either file is replaced
    except Exception as exc:  # noqa: BLE001 - a rendering bug must not cost report.json
        md_text = (minimal_markdown(report) + f"\n(report.md could not be rendered: {type(exc).__name__}; "
                   "report.json has everything)\n")
    atomic_write(json_path, json_text)
    atomic_write(md_path, md_text)
    return json_path, md_path


def write_artifacts(artifacts: dict[str, bytes], out_dir: Path) -> None:
    for name, content in artifacts.items():
        atomic_write(out_dir / name, content)
