"""The terminal: progress lines, and TensorFlow's and LiteRT's native log lines (written
straight to file descriptor 2 by C++) kept off it but kept for error messages."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

Progress = Callable[[str], None]


# TensorFlow's, CUDA's and absl's start-up chatter on fd 2: never the cause of an error.
NOISE = re.compile("|".join((
    r"cuda", r"cudnn", r"cufft", r"cublas", r"TensorRT", r"TF-TRT", r"absl::InitializeLog",
    r"oneDNN custom operations", r"TF_ENABLE_ONEDNN_OPTS", r"This TensorFlow binary is optimized",
    r"rebuild TensorFlow with the appropriate compiler flags", r"computation placer already registered",
    r"Created TensorFlow Lite XNNPACK delegate", r"cpu_feature_guard", r"port\.cc:", r"Unable to register",
    r"^\s*warnings\.warn\(", r"UserWarning", r"DeprecationWarning", r"fully_connected.*converted",
)), re.IGNORECASE)
# What an error looks like in native log lines (absl E/F prefixes, exceptions, failed checks).
ERROR_SIGNS = re.compile(r"error|exception|traceback|failed|fatal|abort|invalid|not supported|^[EF]\d{4} ",
                         re.IGNORECASE)


@dataclass
class Captured:
    text: str = ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])

    def error_tail(self, lines: int = 8) -> str:
        """The last native lines that carry an error, without TF/CUDA/absl start-up noise;
        "" when none does (then they have nothing to do with the error)."""
        kept = [line for line in self.text.strip().splitlines()
                if line.strip() and not NOISE.search(line) and ERROR_SIGNS.search(line)]
        return "\n".join(kept[-lines:])


@contextmanager
def native_stderr() -> Iterator[Captured]:
    """Redirect fd 2 to a temp file for the duration; set GATE_VERBOSE=1 to see it live."""
    captured = Captured()
    if os.environ.get("GATE_VERBOSE"):
        yield captured
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as buf:
        saved = os.dup(2)
        os.dup2(buf.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            captured.text = buf.read().decode("utf-8", errors="replace")


def terminal_stderr():
    """A stream on the terminal's stderr that native_stderr() does not redirect (for
    progress lines printed while TF runs); sys.stderr itself when it is not fd 2."""
    try:
        if sys.stderr.fileno() == 2:
            return open(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    except (AttributeError, OSError, ValueError):
        pass
    return sys.stderr


def progress_printer(enabled: bool = True) -> Progress:
    """Progress lines (`· loading model.keras`) on the terminal's stderr, or nothing."""
    if not enabled:
        return lambda _label: None
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=terminal_stderr(), highlight=False)
    return lambda label: console.print(f"[dim]·[/dim] {escape(label)}")
