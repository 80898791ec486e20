"""The bundled example, as the README's first command runs it (slow: the real digits CNN)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_readme_example_passes_with_int8_within_one_point(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "gate", "check", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "checks" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    drop = report["original"]["accuracy"]["top1"] - report["candidate"]["evaluation"]["accuracy"]["top1"]
    assert drop <= 0.01
    assert report["candidate"]["quantization"] == "int8"
    for role in ("reference", "candidate"):
        assert report[role]["bytes_raw"] > 0 and report[role]["bytes_gzip"] > 0
        assert report[role]["latency"]["p50_ms"] > 0
    assert report["candidate"]["bytes_gzip"] * 3 < report["reference"]["bytes_gzip"]
    assert (out / "report.md").read_text().startswith("## ✅ model-gate: pass")
