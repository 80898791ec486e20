"""The `gate` command. Commands parse, call one library function, render; only this
module turns errors into exit codes. Nothing here imports TensorFlow at import time."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gate import __version__
from gate.errors import EXIT_BAD_INPUT, BadInputError, GateError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(err: GateError) -> None:
    click.echo(f"error: {err.render()}", err=True)
    sys.exit(err.exit_code)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="model-gate")
def main() -> None:
    """model-gate: optimize a model with tfmot, convert it to TFLite, benchmark it in
    LiteRT, and pass or fail it against the thresholds in gate.yml.

    Exit codes: 0 pass, 1 a threshold failed, 2 bad input, 3 internal error.
    """


@main.command()
@click.option("--config", "-c", "config", default="gate.yml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The gate config.")
@click.option("--out", "-o", "out", default="gate-report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where report.json and report.md go.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line.")
@click.option("--in-process", is_flag=True,
              help="Measure in this process instead of a limited worker (debugging; never for untrusted models).")
@click.option("--baseline", "baseline", metavar="REF", default=None,
              help="Compare with the candidate of this commit/branch (default: the PR's merge-base, or the "
                   "merge-base with the default branch).")
@click.option("--baseline-report", type=click.Path(exists=True, path_type=Path), default=None,
              help="Compare with a main-branch run's report.json (and the candidate.tflite beside it).")
@click.option("--no-baseline", is_flag=True, help="Judge the absolute thresholds only.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=".gate-cache",
              show_default=True, help="Keep measured models here for re-runs (content-addressed; latency is always "
                                      "timed again).")
@click.option("--no-cache", is_flag=True, envvar="GATE_NO_CACHE",
              help="Measure everything again; do not read or write the cache (also: GATE_NO_CACHE=1).")
@click.option("--policy", "policy", metavar="NAME|FILE", default=None,
              help="Try this policy (a preset name or a policy file) instead of gate.yml's, without editing it.")
@click.option("--model", "-m", "model", metavar="NAME", default=None,
              help="Gate only this model of gate.yml's `models:` (a matrix leg); its report goes to OUT/NAME/.")
@click.option("--target", type=click.Choice(["local"]), default=None,
              help="Measure latency on this machine, whatever gate.yml's benchmark.target says.")
def check(config: Path, out: Path, quiet: bool, in_process: bool, baseline: str | None,
          baseline_report: Path | None, no_baseline: bool, cache_dir: Path, no_cache: bool,
          policy: str | None, model: str | None, target: str | None) -> None:
    """Run the gate: load, optimize, convert, evaluate, benchmark, judge, report.

    Writes OUT/report.json and OUT/report.md on every exit path. With `models:` in
    gate.yml every model is gated in turn (or only --model NAME): each model's report in
    OUT/NAME/, the combined report (one verdict, one exit code) in OUT/report.json.

    Example:

        gate check --config gate.yml --out gate-report

        gate check --policy prune-int8
    """
    from rich.console import Console

    from gate.config.load import config_models
    from gate.console import progress_printer
    from gate.report.terminal import print_combined, print_report
    from gate.run.parent.run import run_gate

    console = Console(highlight=False)
    args = dict(in_process=in_process, show_progress=not quiet, baseline=baseline,
                baseline_report=str(baseline_report) if baseline_report else None,
                compare_base=not no_baseline, cache_dir=None if no_cache else cache_dir, policy=policy,
                target=target)
    try:
        names = config_models(config)
    except GateError:
        names = []                      # run_gate reports the problem (and writes the error report)
    if names and model is None and baseline_report is not None:
        _fail(BadInputError(f"--baseline-report is one model's report, and gate.yml lists {len(names)} models",
                            field="--baseline-report", hint="with `models:`, give it to one model: --model NAME"))
    try:
        if names and (model is None or model in names):
            from gate.fleet.run import run_models

            report = run_models(config, out, [model] if model else names, progress=progress_printer(not quiet),
                                each=lambda _name, r: print_report(r, console, quiet=quiet), **args)
            print_combined(report, console)
            click.echo(f"report: {out / 'report.json'}, {out / 'report.md'}", err=True)
            sys.exit(report["exit_code"])
        report = run_gate(config, out, progress_printer(not quiet), model=model, **args)
    except KeyboardInterrupt:
        click.echo(f"interrupted; report: {out / 'report.json'}", err=True)
        sys.exit(130)
    print_report(report, console, quiet=quiet)
    click.echo(f"report: {out / 'report.json'}, {out / 'report.md'}", err=True)
    sys.exit(report["exit_code"])


@main.command()
@click.option("--config", "-c", "config", default="gate.yml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The gate config: model, data, thresholds.")
@click.option("--budget-minutes", "-b", default=20.0, show_default=True, type=float,
              help="Wall-clock budget; no trial starts that would not finish within it (estimated).")
@click.option("--objective", type=click.Choice(["size", "latency"]), default="size", show_default=True,
              help="What the winner minimizes among the policies that pass: gzip size or p50 latency.")
@click.option("--out", "-o", "out", default="gate-tune", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where tune.json, tune.md, pareto.png and each trial's report go.")
@click.option("--write", "write", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the winning policy here (default: OUT/policy.yml).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=".gate-cache",
              show_default=True, help="The measurement cache shared with gate check: a re-run reuses finished "
                                      "trials.")
@click.option("--no-cache", is_flag=True, envvar="GATE_NO_CACHE", help="Measure every trial again.")
@click.option("--in-process", is_flag=True, help="Measure in this process (debugging; never for untrusted models).")
def tune(config: Path, budget_minutes: float, objective: str, out: Path, write: Path | None, cache_dir: Path,
         no_cache: bool, in_process: bool) -> None:
    """Search for the smallest (or fastest) policy that passes gate.yml's thresholds.

    Cheapest first: post-training modes and LiteRT recipes, selective float fallback, QAT,
    then pruning / clustering / structured pruning at decreasing strength with per-layer
    tables from a measured sensitivity. Every trial is a `gate check` of that policy.
    Exit 0: found (policy written); 1: none passed within the budget (the closest named);
    2: bad input. See docs/tune.md.

    Example:

        gate tune --config gate.yml --budget-minutes 20 --out gate-tune
    """
    from gate.tune import tune as run_tune

    try:
        result = run_tune(config, out, budget_minutes=budget_minutes, objective=objective, write=write,
                          cache_dir=None if no_cache else cache_dir, progress=lambda line: click.echo(line),
                          in_process=in_process)
    except GateError as err:
        _fail(err)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    click.echo(("FOUND " if result.exit_code == 0 else "NONE ") + result.summary)
    click.echo("wrote: " + ", ".join(result.files.values()), err=True)
    sys.exit(result.exit_code)


@main.command("action")
def action_mode() -> None:
    """Run as the GitHub Action (the container's entry point): inputs from INPUT_*, event
    from GITHUB_EVENT_PATH; writes the job summary, outputs, annotations and the sticky
    PR comment. The exit code follows the `fail-on` input. See docs/action.md.

    Example:

        INPUT_CONFIG=gate.yml INPUT_COMMENT=never gate action
    """
    import os

    from gate.action.entry import run_action

    env = dict(os.environ)
    for key in [k for k in os.environ if k.upper().replace("-", "_") == "INPUT_GITHUB_TOKEN"]:
        del os.environ[key]  # the token stays in `env`, out of reach of everything else
    sys.exit(run_action(env))


@main.command()
@click.option("--config", "-c", "config", default="gate.yml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The gate config.")
@click.option("--repeats", "-n", default=10, show_default=True, type=click.IntRange(2, 1000),
              help="A/A comparisons of the candidate against itself.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--model", "-m", "model", metavar="NAME", default=None,
              help="The model of gate.yml's `models:` to calibrate (required when there are several).")
def calibrate(config: Path, repeats: int, as_json: bool, model: str | None) -> None:
    """Measure the candidate against itself (A/A) and suggest regression limits.

    Shows how far the latency ratio of two identical models strays on this machine (the
    noise a limit must clear), and prints threshold values for gate.yml with room above
    it. Size and accuracy do not move between identical runs.

    Example:

        gate calibrate --repeats 10
    """
    import yaml

    from gate.console import progress_printer
    from gate.run.parent.calibrate import calibrate_config

    try:
        result = calibrate_config(config, repeats, progress_printer(), model=model)
    except GateError as err:
        _fail(err)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"A/A latency ratio over {repeats} repeats ({result.latency_seconds:.1f} s): "
               + ", ".join(f"{r:.3f}" for r in result.latency_ratios))
    click.echo(f"largest A/A deviation incl. 95 % intervals: {100 * result.latency_noise:.1f} %")
    click.echo(f"size: {result.size_bytes:,} bytes, identical every run (deterministic)")
    if result.accuracy is None:
        click.echo(f"accuracy: the model has no classifier output ({result.eval_examples} examples); gate its "
                   "metrics with thresholds.metrics (e.g. mae: {max_increase_vs_base: ...})")
    else:
        click.echo(f"accuracy: {100 * result.accuracy:.2f} % on {result.eval_examples} examples; one example = "
                   f"{100 / result.eval_examples:.2f} points")
    click.echo("\nsuggested thresholds for gate.yml:\n")
    click.echo(yaml.safe_dump({"thresholds": result.suggestions()}, sort_keys=False).rstrip())


@main.command("models")
@click.option("--config", "-c", "config", default="gate.yml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The gate config (with `models:`).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list (for `strategy.matrix.model: ${{ fromJSON(...) }}`).")
@click.option("--changed", is_flag=True,
              help="Only the models whose inputs (model file, data, resolved policy, gate.yml entry, gate version) "
                   "differ from the base, by content digest.")
@click.option("--base", "base", metavar="REF", default=None,
              help="With --changed: compare with the merge-base of HEAD and REF (default: the pull request's base, "
                   "or the default branch).")
@click.option("--explain", is_flag=True, help="With --changed: say on stderr why each model is listed or not.")
def models(config: Path, as_json: bool, changed: bool, base: str | None, explain: bool) -> None:
    """List the models of gate.yml's `models:` (all, or the ones a change touched).

    Exit 2 when gate.yml has no `models:` or cannot be read.

    Example:

        gate models --changed --base main --json
    """
    try:
        if changed:
            from gate.fleet.changed import changed_models

            found = changed_models(config, base)
            if explain:
                for c in found:
                    click.echo(f"{c.name}: {c.why}", err=True)
            names = [c.name for c in found if c.changed]
        else:
            from gate.fleet.changed import names_of

            names = names_of(config)
    except GateError as err:
        _fail(err)
    if as_json:
        click.echo(json.dumps(names))
    else:
        for name in names:
            click.echo(name)


@main.command("export")
@click.option("--reports", "reports", default="gate-report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The directory `gate check` (or `gate report merge`) wrote.")
@click.option("--out", "-o", "out", default="dist", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where NAME.tflite and manifest.json go.")
@click.option("--config", "-c", "config", default="gate.yml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The gate config the reports must be of (its sha256 is compared).")
@click.option("--allow-failing", is_flag=True,
              help="Export models that failed their thresholds too, marked `\"passed\": false` in the manifest.")
def export_cmd(reports: Path, out: Path, config: Path, allow_failing: bool) -> None:
    """Export the gated models for a release: OUT/NAME.tflite and OUT/manifest.json.

    Takes the candidates `gate check` wrote next to its reports (the bytes that were
    judged; nothing is measured again) after checking each one's sha256 against its
    report. Exit 0 when every model was exported, 1 when one was left out (it failed, or
    ended in an error), 2 for bad input.

    Example:

        gate check && gate export --out dist
    """
    from gate.fleet.export import MANIFEST, export

    try:
        result = export(reports, out, config=config, allow_failing=allow_failing)
    except GateError as err:
        _fail(err)
    for name in result.exported:
        entry = result.manifest["models"][name]
        mark = "" if entry["passed"] else " (FAILED its thresholds; --allow-failing)"
        click.echo(f"exported {out / entry['file']} ({entry['bytes']:,} B, sha256 {entry['sha256'][:12]}){mark}")
    for name, why in result.left_out.items():
        click.echo(f"not exported: {name}: {why}", err=True)
    click.echo(f"manifest: {out / MANIFEST}", err=True)
    sys.exit(result.exit_code)


@main.group()
def policy() -> None:
    """Inspect and validate optimization policies (no TensorFlow needed)."""


@policy.command("list")
def policy_list() -> None:
    """List the preset policies with their one-line descriptions.

    Example:

        gate policy list
    """
    from gate.config.policies import load_policy_file, preset_names

    width = max(len(n) for n in preset_names())
    for name in preset_names():
        click.echo(f"{name:<{width}}  {load_policy_file(Path(name)).policy.description}")


@policy.command("show")
@click.argument("name")
def policy_show(name: str) -> None:
    """Print a policy (preset name or file) fully resolved, `extends` applied, as YAML that
    `gate policy validate` accepts: a starting point for your own policy file.

    Example:

        gate policy show prune-int8 > ci/policy.yml
    """
    import yaml

    from gate.config.policies import load_policy_file, policy_data

    try:
        resolved = load_policy_file(Path(name))
    except GateError as err:
        _fail(err)
    data = policy_data(resolved.policy)
    click.echo(f"# {resolved.name}" + (f" (extends {' -> '.join(resolved.chain[1:])})" if len(resolved.chain) > 1 else ""))
    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@policy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def policy_validate(files: tuple[Path, ...]) -> None:
    """Validate policy files (or gate.yml configs: a file with a `model:` or `models:` key).

    Exits 2 when any file is invalid, naming the file, field and line.

    Example:

        gate policy validate policies/*.yml my-policy.yml
    """
    from gate.config.load import config_models, load_config
    from gate.config.policies import load_policy_file
    from gate.config.yamlio import read_yaml

    bad = 0
    for path in files:
        try:
            doc = read_yaml(path, kind="policy") if path.exists() else None
            if doc is not None and isinstance(doc.data, dict) and "models" in doc.data:
                names = config_models(path)
                for name in names:
                    load_config(path, name)
                click.echo(f"ok: {path} (config, {len(names)} models: {', '.join(names)})")
            elif doc is not None and isinstance(doc.data, dict) and "model" in doc.data:
                load_config(path)
                click.echo(f"ok: {path} (config)")
            else:
                resolved = load_policy_file(path)
                click.echo(f"ok: {path} ({resolved.policy.convert.quantization.value})")
        except GateError as err:
            bad += 1
            click.echo(f"error: {err.render()}", err=True)
    sys.exit(EXIT_BAD_INPUT if bad else 0)


@policy.command("schema")
@click.option("--config", "kind", flag_value="config", help="The schema of gate.yml instead of a policy.")
@click.option("--policy", "kind", flag_value="policy", default=True, help="The schema of a policy file.")
def policy_schema(kind: str) -> None:
    """Print the JSON Schema of policy files (or of gate.yml), for editors.

    Example:

        gate policy schema > policy.schema.json
    """
    from gate.config.schema import json_schema

    click.echo(json.dumps(json_schema(kind), indent=2))


@main.group()
def report() -> None:
    """Work with report.json files."""


@report.command("schema")
def report_schema() -> None:
    """Print the JSON Schema of report.json.

    Example:

        gate report schema > report.schema.json
    """
    from gate.report.model import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@report.command("render")
@click.argument("report_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def report_render(report_json: Path) -> None:
    """Render a report.json as Markdown on stdout.

    Example:

        gate report render gate-report/report.json
    """
    from gate.report.load import read_report
    from gate.report.render import render_markdown

    try:
        click.echo(render_markdown(read_report(report_json)), nl=False)
    except GateError as err:
        _fail(err)


@report.command("merge")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "-o", "out", default="gate-report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the combined report.json and report.md go.")
@click.option("--expect", metavar="JSON", default=None,
              help="The models the legs ran (`gate models --json`): one without a report is an error row "
                   "naming it; `[]` (nothing changed) gives a passing report that says so.")
def report_merge(dirs: tuple[Path, ...], out: Path, expect: str | None) -> None:
    """Merge per-model reports (matrix legs' artifacts) into one report and one exit code.

    Each DIR is a leg's gate-report/ (or a directory above it). Reports from different
    gate versions or gate.yml files, or two reports for one model, exit 2.

    Example:

        gate report merge legs/*/ --expect "$MODELS" --out gate-report
    """
    from gate.fleet.merge import merge_reports, parse_expect

    try:
        report = merge_reports(list(dirs), out, parse_expect(expect))
    except GateError as err:
        _fail(err)
    for row in report["rows"]:
        click.echo(f"{row['name']}: {row['status']} - {row['summary']}")
    click.echo(f"{report['status'].upper()} {report['summary']}")
    click.echo(f"report: {out / 'report.json'}, {out / 'report.md'}", err=True)
    sys.exit(report["exit_code"])


@report.command("comment")
@click.argument("report_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--repo", required=True, help="OWNER/NAME of the pull request's repository.")
@click.option("--pr", "pr", type=click.IntRange(min=1), help="The pull request number.")
@click.option("--pr-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Take the number from a pr.json that `gate action` wrote (instead of --pr).")
@click.option("--head-sha", required=True,
              help="The commit the report is for (workflow_run: github.event.workflow_run.head_sha); "
                   "the PR's current head must be this commit.")
@click.option("--marker", default="gate.yml", show_default=True,
              help="The config path the comment is for (as `gate action` names it).")
@click.option("--mode", type=click.Choice(["always", "on-change", "on-failure"]), default="always",
              show_default=True, help="When to post, as the action's `comment` input.")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A trusted comment template (Jinja, sandboxed); never one from the PR.")
@click.option("--token-env", default="GITHUB_TOKEN", show_default=True,
              help="The environment variable that holds the token.")
def report_comment(report_json: Path, repo: str, pr: int | None, pr_file: Path | None, head_sha: str,
                   marker: str, mode: str, template: Path | None, token_env: str) -> None:
    """Post or update the sticky PR comment from a report.json (fork-safe, two workflows).

    For a trusted `workflow_run` workflow that downloaded the first workflow's artifact:
    the report and pr.json are validated as untrusted data, and nothing is posted unless
    the PR's current head commit is --head-sha. Exit codes: 0 posted or up to date,
    2 bad input or a head mismatch, 3 GitHub did not take the comment.

    Example:

        gate report comment gate-report/report.json --repo octo/app --pr-file gate-report/pr.json --head-sha "$HEAD_SHA"
    """
    import os

    from gate.action.artifact_comment import Target, comment_from_artifact

    try:
        target = Target.parse(repo, pr, pr_file, head_sha)
        code = comment_from_artifact(report_json, target, token=os.environ.get(token_env, ""), env=os.environ,
                                     marker=marker, mode=mode, template=template)
    except GateError as err:
        _fail(err)
    sys.exit(code)
