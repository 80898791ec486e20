"""Keep TensorFlow's and LiteRT's native log lines (written straight to file
descriptor 2 by C++) off the user's terminal, but keep them for error messages."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator


@dataclass
class Captured:
    text: str = ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


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
