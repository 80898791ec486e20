"""Error types. Each carries the exit code the CLI maps it to and a message for the user.

Messages say what was expected, what was received, and how to fix it. Library code
raises them; the run's parent (gate.run.parent.run.run_gate) turns one into an error
report with its exit code, and the CLI (gate.cli) and the action (gate.action.entry) exit
with the report's code.
"""
from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class GateError(Exception):
    """Base class: an error the gate reports to the user instead of a traceback."""

    exit_code = EXIT_INTERNAL
    kind = "internal"

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, hint: str | None = None):
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        self.hint = hint
        super().__init__(self.render())

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file) + (f":{self.line}" if self.line else ""))
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)

    def render(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    @property
    def report_status(self) -> str:
        """report.json's status for a run this error ended: "fail" when the policy failed on
        a valid model (exit 1: OptimizationError), else "error" (the gate could not judge)."""
        return "fail" if self.exit_code == EXIT_FAIL else "error"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "file": self.file,
                "field": self.field, "line": self.line, "hint": self.hint,
                "exit_code": self.exit_code}


class BadInputError(GateError):
    """Something the user gave us is wrong: exit 2."""

    exit_code = EXIT_BAD_INPUT
    kind = "bad_input"


class ConfigError(BadInputError):
    kind = "config"


class PolicyError(BadInputError):
    kind = "policy"


class ModelError(BadInputError):
    kind = "model"


class DataError(BadInputError):
    kind = "data"


class OptimizationError(GateError):
    """A valid model the policy's tool cannot optimize (tfmot's own transform fails on it):
    the policy failed on this model, exit 1 -- not bad input, nothing in the files is wrong.
    The message names the layer and the policies that avoid the failing step."""

    exit_code = EXIT_FAIL
    kind = "optimization"


class TargetError(BadInputError):
    """The benchmark target (an adb device, an ssh board) is missing, unreachable or
    refuses the run: exit 2, naming the benchmark.target field to fix."""

    kind = "target"


class TargetCrash(TargetError):
    """The model's run crashed on the device (a signal, an abort): exit 2 when a figure the
    report needs is missing, `not_judged` when only a latency check is affected."""

    kind = "target_crash"


class InternalError(GateError):
    exit_code = EXIT_INTERNAL
    kind = "internal"

    @classmethod
    def from_exception(cls, exc: BaseException) -> tuple["InternalError", str]:
        """A bug's error and the traceback note its report keeps (the last 4000 characters)."""
        import traceback

        err = cls(f"internal error: {type(exc).__name__}: {exc}",
                  hint="this is a model-gate bug; please report it with report.json")
        return err, "traceback: " + "".join(traceback.format_exception(exc))[-4000:]


KINDS: dict[str, type[GateError]] = {
    "bad_input": BadInputError, "config": ConfigError, "policy": PolicyError, "model": ModelError,
    "data": DataError, "optimization": OptimizationError, "internal": InternalError,
}


def error_from_dict(d: dict) -> GateError:
    """Rebuild an error a worker process reported (GateError.to_dict)."""
    cls = KINDS.get(str(d.get("kind")), InternalError)
    err = cls(str(d.get("message", "")), file=d.get("file"), field=d.get("field"), line=d.get("line"),
              hint=d.get("hint"))
    if isinstance(d.get("exit_code"), int) and cls is InternalError:
        err.exit_code = d["exit_code"]
    return err
