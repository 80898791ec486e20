"""The run as it goes: its record (gate.report.record.RunRecord, filled stage by stage so
an error report keeps what finished), the files written next to the report, the time each
stage took, and the progress lines."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from gate.console import Progress, native_stderr
from gate.errors import GateError
from gate.report.record import RunRecord


class StageLog:
    def __init__(self, progress: Progress, record: RunRecord | None = None):
        self.record = record if record is not None else RunRecord()
        self.artifacts: dict[str, bytes] = {}   # files written next to the report
        self.progress = progress
        self.on_stage: Callable[[str], None] = lambda _label: None  # the worker records where it is

    def note(self, *texts: str) -> None:
        if texts:
            self.record = self.record.with_notes(*texts)

    def keep(self, **sections: Any) -> None:
        """Record finished sections (validated against RunRecord's types)."""
        self.record = self.record.with_sections(**sections)

    @contextmanager
    def stage(self, name: str, label: str) -> Iterator[None]:
        """Time a stage; TF's native log lines are kept off the terminal, and those that
        carry an error (not TF/CUDA/absl start-up noise) are added to the hint of an error
        raised inside the stage."""
        self.progress(label)
        self.on_stage(label)
        start = time.perf_counter()
        try:
            with native_stderr() as native:
                yield
        except GateError as err:
            said = native.error_tail(8)
            if said and not err.hint:
                err.hint = "TensorFlow said:\n" + said
            raise
        finally:
            self.record = self.record.with_timing(name, time.perf_counter() - start)
