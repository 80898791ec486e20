"""The report on a terminal: the tables, the notes (what each optimization step changed,
left dense or left float, and why) and the verdict line (rich; every text from the report
is escaped, so `[batch_normalization]` prints as written)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate.report.render import (
    check_value,
    delegation_cell,
    measured_on,
    metric_rows,
    metric_value,
    reference_label,
    shows_legacy_accuracy,
    time_split,
)

STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold red"}


def print_report(report: dict, console: Console, *, quiet: bool = False) -> None:
    status = report["status"]
    if not quiet and report.get("candidate") and report.get("reference"):
        console.print(_sizes_table(report))
    if not quiet and report.get("stages"):
        console.print(stages_table(report["stages"]))
    if not quiet and report["checks"]:
        table = Table(title="checks", title_justify="left")
        intervals = any(c.get("ci_low") is not None for c in report["checks"])
        columns = ("check", "reference", "candidate", *(("interval",) if intervals else ()), "limit", "status")
        for col in columns:
            table.add_column(col, justify="left" if col in ("check", "status") else "right")
        for c in report["checks"]:
            interval = (f"{check_value(c['ci_low'], c)} to {check_value(c['ci_high'], c)}"
                        if c.get("ci_low") is not None else "–")
            table.add_row(c["name"], check_value(c["reference"], c), check_value(c["value"], c),
                          *((interval,) if intervals else ()), f"{c['direction']} {check_value(c['limit'], c)}",
                          _status(c))
        console.print(table)
    if not quiet:
        print_notes(report, console)
        spent = time_split(report.get("timings_s"))
        if spent:
            console.print(f"[dim]time {escape(spent)}[/dim]", soft_wrap=True)
    console.print(f"[{STYLE[status]}]{status.upper()}[/{STYLE[status]}] {escape(report['summary'])}", markup=True,
                  soft_wrap=True)


NOTE_LIMIT = 600   # characters of one note on the terminal (report.json has it whole)


def print_notes(report: dict, console: Console) -> None:
    """The report's notes: the plan of the policy's steps (left dense / left float, by
    reason), tfmot's notes, verification findings. Tracebacks stay in report.json."""
    notes = [n for n in report.get("notes") or [] if not n.startswith("traceback:")]
    if not notes:
        return
    console.print("[bold]notes[/bold]")
    for note in notes:
        text = note if len(note) <= NOTE_LIMIT else note[:NOTE_LIMIT] + " ... (report.json has all of it)"
        console.print(f"[dim]·[/dim] {escape(text)}")


def _status(check: dict) -> str:
    outcome = check.get("outcome")
    if outcome == "not_judged":
        return "[yellow]NOT JUDGED[/yellow] (pass)" if check["passed"] else "[red]NOT JUDGED[/red]"
    if outcome == "not_applicable":
        return "[dim]n/a[/dim]"
    return "[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]"


def _sizes_table(report: dict) -> Table:
    ref, cand, orig = report["reference"], report["candidate"], report["original"]
    table = Table(title="measurements", title_justify="left")
    table.add_column("")
    table.add_column(escape(f"reference ({reference_label(report)})"), justify="right")
    table.add_column(escape(f"candidate ({cand['quantization']})"), justify="right")
    table.add_row("size raw", f"{ref['bytes_raw']:,} B", f"{cand['bytes_raw']:,} B")
    table.add_row("size gzip", f"{ref['bytes_gzip']:,} B", f"{cand['bytes_gzip']:,} B")
    if shows_legacy_accuracy(report):
        for key in orig["accuracy"]:
            table.add_row(f"accuracy {key} (original {100 * orig['accuracy'][key]:.2f} %)",
                          f"{100 * ref['evaluation']['accuracy'][key]:.2f} %",
                          f"{100 * cand['evaluation']['accuracy'][key]:.2f} %")
    for name, original, reference, candidate in metric_rows(report):
        label = name if original == "–" else f"{name} (original {original})"
        table.add_row(escape(label), reference, candidate)
    table.title = f"measurements (latency on {escape(measured_on(report))})"
    for q in ("p50", "p99"):
        table.add_row(f"latency {q}", f"{ref['latency'][f'{q}_ms']:.4g} ms", f"{cand['latency'][f'{q}_ms']:.4g} ms")
    delegation = report.get("delegation")
    if delegation:
        table.add_row("delegation", escape(delegation_cell(delegation.get("reference")).replace("\\", "")),
                      escape(delegation_cell(delegation.get("candidate")).replace("\\", "")))
    on_target = report.get("on_target")
    if on_target:
        for key, value in on_target["candidate"]["accuracy"].items():
            table.add_row(escape(f"accuracy {key} on {on_target['measured_on']}"),
                          f"{100 * on_target['reference']['accuracy'][key]:.2f} %", f"{100 * value:.2f} %")
    return table


def _opt(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def stages_table(stages: list[dict]) -> Table:
    table = Table(title="stages", title_justify="left")
    for col in ("stage", "s", "params", "sparsity", "uniq/ch", "raw B", "gzip B", "acc / metrics"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True,
                         min_width=9 if col == "stage" else None)
    for s in stages:
        w = s.get("weights") or {}
        acc = (s.get("accuracy") or {}).get("top1")
        metrics = s.get("metrics") or {}
        score = _opt(acc and 100 * acc, ".2f") + (" %" if acc else "") if acc is not None or not metrics else \
            escape(", ".join(f"{k} {metric_value(k, v)}" for k, v in list(metrics.items())[:2]))
        table.add_row(s["name"], f"{s['seconds']:.1f}", _opt(s.get("params"), ","),
                      _opt(w.get("sparsity") and 100 * w["sparsity"], ".1f") + (" %" if w.get("sparsity") else ""),
                      _opt(w.get("max_unique_per_channel"), "d"), _opt(s.get("bytes_raw"), ","),
                      _opt(s.get("bytes_gzip"), ","), score)
    return table
