"""What the terminal shows of a report: notes (the plan: left dense / left float) and
hints printed as written (rich markup escaped), and TensorFlow's native log lines kept out
of hints unless they carry the error."""
from __future__ import annotations

import io

from rich.console import Console

from gate.console import Captured
from gate.report.terminal import print_report


def _printed(report: dict) -> str:
    buf = io.StringIO()
    print_report(report, Console(file=buf, highlight=False, width=200), quiet=False)
    return buf.getvalue()


def test_hints_and_notes_print_as_written():
    report = {"status": "error", "exit_code": 2, "checks": [],
              "summary": "policy: qat: ...\n  hint: use qat: {layers: {exclude_names: [batch_normalization]}}",
              "notes": ["step 1 qat: 1 layer(s) quantization-aware; left float: BatchNormalization after Add "
                        "'add' (1: batch_normalization_3)", "traceback: Traceback (most recent call last): ..."]}
    out = _printed(report)
    assert "exclude_names: [batch_normalization]}}" in out
    assert "left float: BatchNormalization after Add 'add' (1: batch_normalization_3)" in out
    assert "traceback" not in out      # report.json keeps it


def test_native_log_noise_is_dropped_and_errors_kept():
    noise = ("2026-12-01 10:00:00.1: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda "
             "drivers on your machine, GPU will not be used.\n"
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             "I0000 00:00:1733.1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available "
             "CPU instructions\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert Captured(noise).error_tail() == ""
    error = "E0000 00:00:1.2 tflite.cc:12] error: 'tfl.average_pool_2d' op quantization parameters violate\n"
    assert Captured(noise + error).error_tail() == error.strip()
