"""The report on a terminal: the tables, the notes (what each optimization step changed,
left dense or left float, and why) and the verdict line (rich; every text from the report
is escaped, so `[batch_normalization]` prints as written).

Fits an 80-column CI log: tables without vertical rules, check and stage names and the
stage seconds never cut (their columns do not wrap; the others wrap between words), and
every line wrapped by rich between words rather than by the terminal mid-word."""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate import units
from gate.report.layers import advice_lines
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
        table = _table("checks")
        intervals = any(c.get("ci_low") is not None for c in report["checks"])
        columns = ("check", "reference", "candidate", *(("interval",) if intervals else ()), "limit", "status")
        longest = max(len(str(c["name"])) for c in report["checks"])
        for col in columns:
            if col == "check":
                table.add_column(col, no_wrap=True, min_width=longest)
            else:
                table.add_column(col, justify="left" if col == "status" else "right", overflow="fold")
        for c in report["checks"]:
            interval = units.interval(c["unit"], c["ci_low"], c["ci_high"]) if c.get("ci_low") is not None else "–"
            table.add_row(escape(str(c["name"])), check_value(c["reference"], c), check_value(c["value"], c),
                          *((interval,) if intervals else ()), f"{c['direction']} {check_value(c['limit'], c)}",
                          _status(c))
        console.print(table)
    for line in advice_lines(report):       # a failed accuracy / fidelity check: the worst layer, what to try
        console.print(f"[yellow]→[/yellow] {escape(line)}", soft_wrap=True)
    if not quiet:
        print_notes(report, console)
        spent = time_split(report.get("timings_s"))
        if spent:
            console.print(f"[dim]time {escape(spent)}[/dim]")
    console.print(f"[{STYLE[status]}]{status.upper()}[/{STYLE[status]}] {escape(report['summary'])}", markup=True)


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


def _table(title: str) -> Table:
    """A table that fits a narrow log: a rule under the header, no vertical rules."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False, collapse_padding=True)


def _status(check: dict) -> str:
    outcome = check.get("outcome")
    if outcome == "not_judged":
        return "[yellow]NOT JUDGED[/yellow] (pass)" if check["passed"] else "[red]NOT JUDGED[/red]"
    if outcome == "not_applicable":
        return "[dim]n/a[/dim]"
    return "[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]"


def _sizes_table(report: dict) -> Table:
    ref, cand, orig = report["reference"], report["candidate"], report["original"]
    table = _table("measurements")
    table.add_column("")
    table.add_column(escape(f"reference ({reference_label(report)})"), justify="right")
    table.add_column(escape(f"candidate ({cand['quantization']})"), justify="right")
    table.add_row("size raw", units.kib(ref["bytes_raw"]), units.kib(cand["bytes_raw"]))
    table.add_row("size gzip", units.kib(ref["bytes_gzip"]), units.kib(cand["bytes_gzip"]))
    if shows_legacy_accuracy(report):
        for key in orig["accuracy"]:
            table.add_row(f"accuracy {key} (original {units.percent(orig['accuracy'][key])})",
                          units.percent(ref["evaluation"]["accuracy"][key]),
                          units.percent(cand["evaluation"]["accuracy"][key]))
    for name, original, reference, candidate in metric_rows(report):
        label = name if original == "–" else f"{name} (original {original})"
        table.add_row(escape(label), reference, candidate)
    table.title = f"measurements (latency on {escape(measured_on(report))})"
    for q in ("p50", "p99"):
        table.add_row(f"latency {q}", units.ms(ref["latency"][f"{q}_ms"]), units.ms(cand["latency"][f"{q}_ms"]))
    delegation = report.get("delegation")
    if delegation:
        table.add_row("delegation", escape(delegation_cell(delegation.get("reference")).replace("\\", "")),
                      escape(delegation_cell(delegation.get("candidate")).replace("\\", "")))
    on_target = report.get("on_target")
    if on_target:
        for key, value in on_target["candidate"]["accuracy"].items():
            table.add_row(escape(f"accuracy {key} on {on_target['measured_on']}"),
                          units.percent(on_target["reference"]["accuracy"][key]), units.percent(value))
    return table


STAGE_COLUMNS = ("stage", "s", "params", "sparsity", "uniq/ch", "raw KiB", "gzip KiB", "score")


def stages_table(stages: list[dict]) -> Table:
    """Stage name and seconds never wrap; the figures fold; the last column wraps between words."""
    table = _table("stages")
    longest = max([len(str(s.get("name", ""))) for s in stages] + [5])
    for col in STAGE_COLUMNS:
        if col == "stage":
            table.add_column(col, no_wrap=True, min_width=longest)
        elif col == "s":
            table.add_column(col, justify="right", no_wrap=True)
        else:
            table.add_column(col, justify="left" if col == "score" else "right",
                             overflow="fold" if col != "score" else "ellipsis")
    for s in stages:
        w = s.get("weights") or {}
        acc = (s.get("accuracy") or {}).get("top1")
        metrics = s.get("metrics") or {}
        if acc is not None or not metrics:
            score = units.percent(acc)
        else:
            score = escape(", ".join(f"{k} {metric_value(k, v)}" for k, v in list(metrics.items())[:2]))
        sparsity = w.get("sparsity")
        table.add_row(escape(str(s["name"])), f"{s['seconds']:,.1f}", units.count(s.get("params")),
                      units.percent(sparsity) if sparsity else "–",
                      units.count(w.get("max_unique_per_channel")),
                      _kib_figure(s.get("bytes_raw")), _kib_figure(s.get("bytes_gzip")), score)
    return table


def print_combined(report: dict, console: Console) -> None:
    """The combined report of several models: one row per model, then the verdict line."""
    table = _table("models")
    for col in ("model", "verdict", "size", "vs base", "accuracy drop", "latency ratio"):
        table.add_column(col, justify="left" if col in ("model", "verdict") else "right",
                         overflow="fold" if col == "model" else "ellipsis")   # a name is never cut
    for row in report["rows"]:
        style = STYLE[row["status"]]
        table.add_row(escape(row["name"]), f"[{style}]{row['status']}[/{style}]", units.kib(row["size_bytes"]),
                      units.change(row["size_change_vs_base"]), units.points(row["accuracy_drop"]),
                      units.ratio(row["latency_ratio"]))
    if report["rows"]:
        console.print(table)
    status = report["status"]
    console.print(f"[{STYLE[status]}]{status.upper()}[/{STYLE[status]}] {escape(report['summary'])}", markup=True)


def _kib_figure(n_bytes: object) -> str:
    return "–" if n_bytes is None else f"{float(n_bytes) / 1024:,.1f}"
