"""`gate action`: the Docker container action. Inputs arrive as INPUT_* variables; it runs
the gate once, then reports in every place GitHub shows: job summary, outputs,
annotations and a sticky PR comment. The exit code follows `fail-on`; nothing about the
comment (posted, refused, rate limited) ever changes it.

The token is masked first thing and only ever handed to the GitHub client.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gate.errors import EXIT_PASS, BadInputError, GateError
from gate.github.actions import (
    add_mask,
    annotation,
    append_step_summary,
    read_inputs,
    set_outputs,
)
from gate.github.client import GitHubClient, GitHubError
from gate.github.comment import (
    DEFAULT_AUTHOR,
    CommentResult,
    find_comment,
    upsert_comment,
)
from gate.github.event import Event, load_event
from gate.report.combined import combined_digest, is_combined, model_reports
from gate.report.render import ICON, md, render_comment

COMMENT_MODES = ("always", "on-change", "on-failure", "never")
MODES = ("check", "plan", "merge")
FAIL_ON = ("fail", "error", "never")
PR_JSON = "pr.json"
TEMPLATE_MAX_BYTES = 64 * 1024
FORK_HINT = (" Pull requests from forks get a read-only token: post the comment from a "
             "workflow_run workflow with `gate report comment` (model-gate's docs/action.md, Forks).")
_DIGEST = re.compile(r"<!-- model-gate-result: ([0-9a-f]{16}) -->")

Say = Callable[[str], None]


@dataclass(frozen=True)
class Inputs:
    """The action's inputs (action.yml), validated."""

    config: str = "gate.yml"
    working_directory: str = "."
    output_dir: str = "gate-report"
    comment: str = "always"
    comment_template: str = ""
    fail_on: str = "fail"
    cache_dir: str = ".gate-cache"
    model: str = ""
    mode: str = "check"
    reports: str = "gate-reports"
    expect: str = ""
    github_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Inputs:
        given = {k: v for k, v in read_inputs(env).items() if k in cls.__dataclass_fields__ and v}
        inputs = cls(**given)
        for name, value, allowed in (("comment", inputs.comment, COMMENT_MODES),
                                     ("fail-on", inputs.fail_on, FAIL_ON), ("mode", inputs.mode, MODES)):
            if value not in allowed:
                raise BadInputError(f"expected one of {', '.join(allowed)}, got {value!r}",
                                    field=name, hint=f"set `{name}:` in the workflow step's `with:`")
        if not Path(inputs.working_directory).is_dir():
            raise BadInputError(f"no such directory: {inputs.working_directory!r}",
                                field="working-directory",
                                hint="paths are relative to the repository root; check out the repo first")
        return inputs

    @property
    def marker_id(self) -> str:
        """Names the config, so two gates on one PR keep two comments."""
        return os.path.normpath(os.path.join(self.working_directory, self.config))


def produce_report(config: Path, out_dir: Path, cache_dir: Path | None = None, model: str = "") -> dict:
    """The gate itself: gate.run.parent.run.run_gate, which writes report.json and report.md;
    for a gate.yml with `models:`, every model (or `model`, a matrix leg) and the combined report."""
    from gate.config.load import config_models
    from gate.run.parent.run import run_gate

    progress = lambda label: print(f"· {label}", flush=True)  # noqa: E731
    try:
        names = config_models(config)
    except GateError:
        names = []                      # run_gate writes the error report
    if names and (not model or model in names):
        from gate.fleet.run import run_models

        return run_models(config, out_dir, [model] if model else names, progress=progress, cache_dir=cache_dir)
    return run_gate(config, out_dir, progress, cache_dir=cache_dir, model=model or None)


def plan_models(config: Path, event: Event | None, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """mode: plan: the models a matrix should gate, and a line per model saying why. In a
    pull request the ones whose inputs differ from the PR's base (gate.fleet.changed);
    otherwise (a push, a release, a manual run) all of them."""
    from gate.fleet.changed import changed_models, names_of

    if event is None or not event.is_pull_request:
        names = names_of(config)
        return names, [f"{n}: listed ({event.name if event else 'no event'}: every model is gated)" for n in names]
    changes = changed_models(config, None, env)
    return [c.name for c in changes if c.changed], [f"{c.name}: {c.why}" for c in changes]


def models_output(report: dict) -> str:
    """The `models` output: the models this run reported on, as a JSON list."""
    if is_combined(report):
        return json.dumps([row["name"] for row in report["rows"]])
    return json.dumps([report["name"]] if report.get("name") else [])


def merge_legs(base: Path, inputs: Inputs, out_dir: Path) -> dict:
    """mode: merge: the matrix legs' reports (downloaded under `reports`) -> the combined report."""
    from gate.fleet.merge import merge_reports, parse_expect

    root = base / inputs.reports
    dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if root.is_dir() and (root / "report.json").is_file():
        dirs.insert(0, root)
    return merge_reports(dirs, out_dir, parse_expect(inputs.expect) if inputs.expect else None)


def github_client(env: Mapping[str, str], token: str) -> GitHubClient:
    """A client for GITHUB_API_URL (so GHES works)."""
    return GitHubClient.from_env(env, token)


# -- pure helpers ----------------------------------------------------------------------------

def exit_code_for(report: dict, fail_on: str) -> int:
    """fail: the gate's own code; error: only errors fail the step; never: always 0."""
    if fail_on == "never" or (fail_on == "error" and report["status"] != "error"):
        return EXIT_PASS
    return int(report["exit_code"])


def headline(report: dict) -> dict[str, str]:
    """The figures a later step may want, as output strings ('' when not measured)."""
    cand, ref = report.get("candidate") or {}, report.get("reference") or {}
    compression = next((c["value"] for c in report.get("checks") or []
                        if c["name"] == "compression.min" and c["value"] is not None),
                       ref["bytes_gzip"] / cand["bytes_gzip"] if cand.get("bytes_gzip") and ref else None)
    accuracy = ((cand.get("evaluation") or {}).get("accuracy") or {}).get("top1")
    p50 = (cand.get("latency") or {}).get("p50_ms")
    return {"size-bytes": str(cand.get("bytes_raw", "")),
            "compression": "" if compression is None else f"{compression:.4f}",
            "accuracy": "" if accuracy is None else f"{accuracy:.6f}",
            "latency-p50-ms": "" if p50 is None else f"{p50:.6g}"}


def result_digest(report: dict) -> str:
    """What the result *is*: verdict, each check's outcome and limit, the model, data and
    config. Timing noise is left out, so `on-change` does not rewrite the comment for it."""
    if is_combined(report):
        return combined_digest(report)
    data = report.get("data") or {}
    key = {"status": report["status"],
           "checks": [(c["name"], c["passed"], c["limit"]) for c in report.get("checks") or []],
           "candidate": (report.get("candidate") or {}).get("sha256"),
           "config": (report.get("config") or {}).get("sha256"),
           "data": sorted(str(v.get("sha256")) for v in data.values() if isinstance(v, dict)),
           "error": [(report.get("error") or {}).get(k) for k in ("kind", "message", "file", "line")]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def comment_decision(mode: str, status: str, existing_body: str | None, digest: str) -> str | None:
    """None to post (create or update), else why not. `existing_body` is our comment's, if any.

    always: every run. on-failure: create only when the status is not pass; an existing
    comment is always brought up to date (so it turns green). on-change: like on-failure,
    but an existing comment is rewritten only when the result's digest changed.
    """
    if mode == "never":
        return "comment: never"
    if mode == "always":
        return None
    if existing_body is None:
        return None if status != "pass" else f"the gate passed and there is no comment yet ({mode})"
    if mode == "on-change":
        match = _DIGEST.search(existing_body)
        if match and match.group(1) == digest:
            return "the result has not changed since the comment was written (on-change)"
    return None


def post_comment(client: GitHubClient, repo: str, pr: int, report: dict, body: str,
                 marker_id: str, mode: str) -> tuple[CommentResult, str | None]:
    """Create or update the sticky comment as `mode` says. Never raises for GitHub errors:
    the result is 'skipped' with a warning. The second value says why nothing was sent."""
    digest = result_digest(report)
    text = f"{body.rstrip()}\n\n<!-- model-gate-result: {digest} -->\n"
    login = None
    existing = None
    if mode not in ("always", "never"):
        try:
            login = client.viewer_login() or DEFAULT_AUTHOR
            existing = find_comment(client, repo, pr, marker_id, login)
        except GitHubError as exc:
            return CommentResult("skipped", warning=f"could not read the PR's comments: {exc.message}"), None
    why_not = comment_decision(mode, report["status"], existing and str(existing.get("body")), digest)
    if why_not:
        kept = CommentResult("unchanged", existing.get("id"), existing.get("html_url")) if existing else \
            CommentResult("skipped")
        return kept, why_not
    return upsert_comment(client, repo, pr, text, marker_id, author_login=login), None


def relative_to(path: Path, root: Path) -> str:
    """path relative to root (POSIX) when inside it, else absolute: later steps run on the
    host, where the container's /github/workspace is another directory."""
    full = path if path.is_absolute() else Path.cwd() / path
    try:
        return full.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return full.resolve().as_posix()


def annotations(report: dict, config: Path, workspace: Path) -> list[str]:
    """::error lines: one per failed check (on its threshold in the config), one for an
    error report (on the file and line it names)."""
    lines = []
    config_file = relative_to(config, workspace)
    if is_combined(report):
        for model in model_reports(report):
            lines += annotations(model, config, workspace)
        return lines + [annotation("error", f"{row['name']}: {row['summary']}", title="model-gate: no report")
                        for row in report["rows"] if row["name"] not in report["reports"]]
    for c in report.get("checks") or []:
        if not c["passed"]:
            lines.append(annotation("error", c["message"], file=config_file, line=c.get("line"),
                                    title=f"model-gate: {c['name']}" + (f" ({report['name']})"
                                                                        if report.get("name") else "")))
    err = report.get("error")
    if err:
        file = relative_to(Path(err["file"]), workspace) if err.get("file") else None
        inside = file is not None and not file.startswith("/")
        text = err["message"] + (f"\nhint: {err['hint']}" if err.get("hint") else "")
        lines.append(annotation("error", text, file=file if inside else None,
                                line=err.get("line") if inside else None,
                                title=f"model-gate: {err['kind']} error"))
    return lines


# -- the run ---------------------------------------------------------------------------------

def fail_early(env: Mapping[str, str], say: Say, err: GateError) -> int:
    """One exit for a run that could not start: annotation, summary, exit code."""
    say(annotation("error", err.render(), title=f"model-gate: {err.kind.replace('_', ' ')}"))
    append_step_summary(env, f"## {ICON['error']} model-gate could not run\n\n{md(err.render())}\n")
    return err.exit_code


def _event(env: Mapping[str, str], say: Say) -> Event | None:
    try:
        return load_event(env)
    except GateError as err:
        say(annotation("warning", f"cannot read the workflow event, so no PR comment: {err.render()}",
                       title="model-gate"))
        return None


def _template(base: Path, name: str, say: Say) -> str | None:
    if not name:
        return None
    path = base / name
    try:
        if path.stat().st_size > TEMPLATE_MAX_BYTES:
            raise OSError(f"larger than {TEMPLATE_MAX_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        say(annotation("warning", f"comment-template {name}: {exc}; using the default comment",
                       title="model-gate"))
        return None


def _comment(env: Mapping[str, str], inputs: Inputs, event: Event | None, report: dict,
             body: str, say: Say) -> tuple[str, str]:
    """Post the comment if this run should; returns (summary line, comment url)."""
    if inputs.comment == "never":
        return "PR comment: off (`comment: never`).", ""
    if event is None or not event.is_pull_request or not event.repo:
        return f"PR comment: none, this run is not for a pull request ({md(event.name if event else '?')}).", ""
    if not inputs.github_token:
        say(annotation("warning", "github-token is empty: no PR comment", title="model-gate"))
        return "PR comment: none, no token.", ""
    try:
        client = github_client(env, inputs.github_token)
        result, why_not = post_comment(client, event.repo, event.pr_number, report, body,
                                       inputs.marker_id, inputs.comment)
    except GateError as err:
        result, why_not = CommentResult("skipped", warning=err.render()), None
    if result.warning:
        say(annotation("warning", result.warning + (FORK_HINT if event.is_fork else ""),
                       title="model-gate: PR comment"))
        return f"PR comment: not posted ({md(result.warning)}).", ""
    if why_not:
        return f"PR comment: {result.action}, {md(why_not)}.", result.url or ""
    say(f"PR #{event.pr_number} comment {result.action}: {result.url or result.id}")
    return f"PR comment: {result.action}.", result.url or ""


def _write_pr_json(out_dir: Path, event: Event | None) -> None:
    """pr.json beside the report, for a trusted workflow_run to comment from (forks)."""
    from gate.report.write import atomic_write

    if event is not None and event.is_pull_request and event.head_sha:
        atomic_write(out_dir / PR_JSON, json.dumps({"pr": event.pr_number, "head_sha": event.head_sha}) + "\n")


def _give_back(path: Path, workspace: Path) -> None:
    """Files a root container writes into the workspace go to the workspace's owner, so
    the runner's later steps (and its cleanup) can change them."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not path.exists():
        return
    owner = workspace.stat()
    if (owner.st_uid, owner.st_gid) == (0, 0):
        return
    for item in [path, *path.rglob("*")]:
        os.chown(item, owner.st_uid, owner.st_gid, follow_symlinks=False)


def run_plan(env: Mapping[str, str], config: Path, event: Event | None, say: Say) -> int:
    """mode: plan: the `models` output for `strategy.matrix.model: ${{ fromJSON(...) }}`."""
    try:
        names, why = plan_models(config, event, env)
    except GateError as err:
        return fail_early(env, say, err)
    for line in why:
        say(line)
    listed = ", ".join(md(n) for n in names) if names else "none: no model's inputs changed, nothing needs gating"
    append_step_summary(env, f"### model-gate plan\n\nModels to gate: {listed}.\n")
    set_outputs(env, {"models": json.dumps(names)})
    return EXIT_PASS


def run_action(env: Mapping[str, str], say: Say = lambda line: print(line, flush=True)) -> int:
    """The whole action; returns the process exit code."""
    token = read_inputs(env).get("github_token", "")
    if token and env.get("GITHUB_ACTIONS") == "true":
        say(add_mask(token))
    try:
        inputs = Inputs.from_env(env)
    except BadInputError as err:
        return fail_early(env, say, err)
    workspace = Path(env.get("GITHUB_WORKSPACE") or Path.cwd())
    base = Path(inputs.working_directory)
    config, out_dir = base / inputs.config, base / inputs.output_dir
    event = _event(env, say)
    cache_dir = base / inputs.cache_dir if inputs.cache_dir else None
    if inputs.mode == "plan":
        return run_plan(env, config, event, say)
    try:
        try:
            report = merge_legs(base, inputs, out_dir) if inputs.mode == "merge" else \
                produce_report(config, out_dir, cache_dir, inputs.model)
        finally:      # actions/cache runs as the runner's user: it must read (and later replace) the entries
            if cache_dir is not None:
                _give_back(cache_dir, workspace)
        body, warning = render_comment(report, _template(base, inputs.comment_template, say))
        if warning:
            say(annotation("warning", warning, title="model-gate: comment-template"))
        _write_pr_json(out_dir, event)
    except Exception as exc:  # noqa: BLE001 - the step must still say what happened
        code = fail_early(env, say, exc if isinstance(exc, GateError) else
                          GateError(f"internal error: {type(exc).__name__}: {exc}"))
        return EXIT_PASS if inputs.fail_on == "never" else code
    try:
        comment_line, comment_url = _comment(env, inputs, event, report, body, say)
    except Exception as exc:  # noqa: BLE001 - the comment never changes the verdict
        say(annotation("warning", f"PR comment failed: {type(exc).__name__}", title="model-gate: PR comment"))
        comment_line, comment_url = f"PR comment: failed ({type(exc).__name__}).", ""
    append_step_summary(env, f"{body.rstrip()}\n\n{comment_line}\n")
    set_outputs(env, {"verdict": report["status"], "summary": report["summary"],
                      "report-json": relative_to(out_dir / "report.json", workspace),
                      "report-markdown": relative_to(out_dir / "report.md", workspace),
                      **headline(report), "comment-url": comment_url, "models": models_output(report)})
    for line in annotations(report, config, workspace):
        say(line)
    _give_back(out_dir, workspace)
    code = exit_code_for(report, inputs.fail_on)
    say(f"model-gate: {report['status']} (exit {code}, fail-on: {inputs.fail_on}): {report['summary']}")
    return code

