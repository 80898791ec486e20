"""Many models in one repo, as a new user would run them: a gate.yml with `models:` holding
a tf_keras CNN, a Keras 3 model and a committed .tflite (the examples' files).

`gate check` gates all three (one worker each, one combined verdict); three
`gate check --model NAME` legs in their own directories merged with `gate report merge`
give the same verdict and checks; the combined comment is posted once and updated in
place; `gate models --changed` on a real git history; `gate export` and its manifest.
One module-scoped run of the three models (dynamic range: no calibration, seconds each);
the legs reuse its cache (latency is timed again, so only deterministic checks are used).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from github_fake import FAKE_TOKEN, FakeGitHub, fake_github_fixture  # noqa: F401

from gate.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ["cnn", "k3", "tfl"]
CONFIG = """\
# three models, one gate
benchmark: {threads: 1, warmup: 2, runs: 10}
evaluate: {max_examples: 100}
policy: dynamic-range
thresholds:
  accuracy: {max_drop: 0.05}
  size: {max_increase: "50%"}         # against main: unchanged here, so nothing is measured twice
models:
  cnn: {model: cnn/model.keras, data: {eval: cnn/eval.npz}}
  k3:
    model: k3/model.keras
    data: {eval: k3/eval.npz}
    thresholds: {accuracy: {min: 0.5}}
  tfl:
    model: tfl/model.tflite
    data: {eval: tfl/eval.npz}
    thresholds: {size_kb: {max: 1}}     # fails: a 24 KiB model
"""
FILES = {"cnn": ("digits", "model.keras"), "k3": ("keras3-cnn", "model.keras"), "tfl": ("tflite", "model.tflite")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, (example, model) in FILES.items():
        (root / name).mkdir()
        shutil.copy(EXAMPLES / example / model, root / name / model)
        shutil.copy(EXAMPLES / example / "eval.npz", root / name / "eval.npz")
    (root / "gate.yml").write_text(CONFIG)
    (root / "README.md").write_text("# models\n")
    (root / ".gitignore").write_text("gate-report/\n.gate-cache/\nlegs/\ndist*/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "three models")
    return root


def gate(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The repo, `gate check` of all three, and three legs merged."""
    repo = make_repo(tmp_path_factory.mktemp("fleet") / "repo")
    cache = repo / ".gate-cache"
    full = gate("check", "-q", "--config", str(repo / "gate.yml"), "--out", str(repo / "gate-report"),
                "--cache-dir", str(cache), "--baseline", "main")
    for name in NAMES:
        leg = gate("check", "-q", "--config", str(repo / "gate.yml"), "--model", name,
                   "--out", str(repo / "legs" / name), "--cache-dir", str(cache), "--baseline", "main")
        assert leg.exit_code == (1 if name == "tfl" else 0), leg.output
    merged = gate("report", "merge", *(str(repo / "legs" / n) for n in NAMES), "--expect", json.dumps(NAMES),
                  "--out", str(repo / "merged"))
    return repo, full, merged


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_gate_check_gates_all_three_with_one_verdict(fleet):
    repo, full, _ = fleet
    assert full.exit_code == 1, full.output
    combined = read(repo / "gate-report" / "report.json")
    assert combined["kind"] == "combined" and combined["status"] == "fail" and combined["exit_code"] == 1
    assert [(r["name"], r["status"]) for r in combined["rows"]] == [("cnn", "pass"), ("k3", "pass"), ("tfl", "fail")]
    assert combined["summary"] == "3 models: 2 pass, 1 fail (tfl: fail)"
    kinds = {}
    for row in combined["rows"]:
        own = read(repo / "gate-report" / row["name"] / "report.json")
        assert own["name"] == row["name"] and own == combined["reports"][row["name"]]
        assert row["size_bytes"] == own["candidate"]["bytes_raw"] > 0
        assert row["latency_ratio"] == pytest.approx(own["candidate"]["latency"]["p50_ms"]
                                                     / own["reference"]["latency"]["p50_ms"])
        assert row["accuracy_drop"] == pytest.approx(own["original"]["accuracy"]["top1"]
                                                     - own["candidate"]["evaluation"]["accuracy"]["top1"])
        assert (repo / "gate-report" / row["name"] / "candidate.tflite").stat().st_size == row["size_bytes"]
        assert own["baseline"]["unchanged"] is True and row["size_change_vs_base"] == 0.0
        kinds[row["name"]] = (own["model"]["format"], own["model"].get("flavour"))
    assert kinds["tfl"][0] == "tflite" and kinds["k3"][1] == "keras3" and kinds["cnn"][1] != "keras3"
    # defaults merged key by key: k3 has its own accuracy.min and the shared max_drop
    assert [c["name"] for c in combined["reports"]["k3"]["checks"]] == ["accuracy.min", "accuracy.max_drop",
                                                                        "size.max_increase"]
    assert [c["name"] for c in combined["reports"]["tfl"]["checks"]] == ["size_kb.max", "accuracy.max_drop",
                                                                         "size.max_increase"]
    md = (repo / "gate-report" / "report.md").read_text()
    assert md.startswith("## ❌ model-gate: fail — 3 models")
    table = "| Model | Verdict | Size | Change vs base | Accuracy drop | Latency ratio |"
    assert md.index(table) < md.index("<details")
    assert "| tfl | ❌ fail | 23.6 KiB | +0.0 % |" in md and md.count("<details") >= 3


def test_three_legs_merged_give_the_same_verdict_and_checks(fleet):
    repo, full, merged = fleet
    assert merged.exit_code == full.exit_code == 1, merged.output
    one, legs = read(repo / "gate-report" / "report.json"), read(repo / "merged" / "report.json")
    assert (legs["status"], legs["exit_code"], legs["summary"]) == (one["status"], one["exit_code"], one["summary"])
    for name in NAMES:
        a, b = one["reports"][name]["checks"], legs["reports"][name]["checks"]
        assert [(c["name"], c["passed"], c["limit"]) for c in a] == [(c["name"], c["passed"], c["limit"]) for c in b]
        assert [c["value"] for c in a] == [c["value"] for c in b]   # size and accuracy: deterministic
        assert one["reports"][name]["candidate"]["sha256"] == legs["reports"][name]["candidate"]["sha256"]
        assert (repo / "merged" / name / "candidate.tflite").is_file()   # next to the merged report, for export


def test_a_leg_that_never_uploaded_is_a_named_error_row(fleet, tmp_path):
    repo, _, _ = fleet
    result = gate("report", "merge", str(repo / "legs" / "cnn"), str(repo / "legs" / "k3"),
                  "--expect", json.dumps(NAMES), "--out", str(tmp_path))
    assert result.exit_code == 3, result.output
    report = read(tmp_path / "report.json")
    assert [(r["name"], r["status"]) for r in report["rows"]] == [("cnn", "pass"), ("k3", "pass"), ("tfl", "error")]
    assert "tfl: error" in report["summary"] and "no report" in report["rows"][2]["summary"]
    assert "| tfl | ⛔ error |" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("tamper, message", [
    (lambda r: r["versions"].update({"model-gate": "9.9.9"}), "different gate versions: 0.1.0: cnn"),
    (lambda r: r["config"].update({"sha256": "f" * 64}), "different gate.yml files"),
    (lambda r: r.update(name="cnn"), "two reports for model 'cnn'"),
])
def test_merging_reports_of_different_gates_or_configs_exits_2(fleet, tmp_path, tamper, message):
    repo, _, _ = fleet
    legs = tmp_path / "legs"
    shutil.copytree(repo / "legs", legs)
    path = legs / "k3" / "k3" / "report.json"
    report = read(path)
    tamper(report)
    path.write_text(json.dumps(report))
    result = gate("report", "merge", *(str(legs / n) for n in NAMES), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_model_outside_expect_exits_2(fleet, tmp_path):
    repo, _, _ = fleet
    result = gate("report", "merge", str(repo / "legs" / "cnn"), "--expect", '["k3"]', "--out", str(tmp_path))
    assert result.exit_code == 2 and "reports for models not in --expect: cnn" in result.output


def test_one_comment_posted_then_updated_in_place(fleet, fake_github: FakeGitHub, tmp_path):
    repo, _, _ = fleet
    head, pr, slug = "a" * 40, 7, "octo/models"
    fake_github.pulls[(slug, pr)] = head
    env = {"GITHUB_TOKEN": FAKE_TOKEN, "GITHUB_API_URL": fake_github.url}

    def comment(report: Path):
        return gate("report", "comment", str(report), "--repo", slug, "--pr", str(pr), "--head-sha", head, env=env)

    first = comment(repo / "merged" / "report.json")
    assert first.exit_code == 0 and "comment created" in first.output, first.output
    # a second run: tfl's leg is missing this time; the same comment is rewritten
    gate("report", "merge", str(repo / "legs" / "cnn"), str(repo / "legs" / "k3"), "--expect", json.dumps(NAMES),
         "--out", str(tmp_path))
    second = comment(tmp_path / "report.json")
    assert second.exit_code == 0 and "comment updated" in second.output, second.output
    (posted,) = fake_github.issue_comments(slug, pr)
    body = posted["body"]
    assert body.startswith("<!-- model-gate:gate.yml -->\n## ⛔ model-gate: error — 3 models")
    assert "| tfl | ⛔ error |" in body and "| cnn | ✅ pass |" in body and "no report" in body


def test_export_writes_the_gated_candidates_and_a_manifest(fleet, tmp_path):
    repo, _, _ = fleet
    dist = tmp_path / "dist"
    result = gate("export", "--reports", str(repo / "gate-report"), "--out", str(dist),
                  "--config", str(repo / "gate.yml"))
    assert result.exit_code == 1, result.output        # tfl failed: left out, the release must not pass
    assert "not exported: tfl: failed its thresholds" in result.output
    manifest = read(dist / "manifest.json")
    assert sorted(manifest["models"]) == ["cnn", "k3"] and not (dist / "tfl.tflite").exists()
    assert manifest["gate_yml_sha256"] == hashlib.sha256((repo / "gate.yml").read_bytes()).hexdigest()
    for name, entry in manifest["models"].items():
        exported = (dist / entry["file"]).read_bytes()
        report = read(repo / "gate-report" / name / "report.json")
        assert entry["sha256"] == hashlib.sha256(exported).hexdigest() == report["candidate"]["sha256"]
        assert exported == (repo / "gate-report" / name / "candidate.tflite").read_bytes()
        assert entry["bytes"] == len(exported) and entry["passed"] is True
        assert entry["policy"]["name"] == "dynamic-range" and entry["policy"]["convert"]["quantization"] == "dynamic"
        assert [c["name"] for c in entry["checks"]] == [c["name"] for c in report["checks"]]
        assert all(c["passed"] for c in entry["checks"]) and entry["metrics"]["accuracy"]["top1"] > 0.5
        assert entry["versions"]["model-gate"] and entry["base"]["sha"] == git(repo, "rev-parse", "main").strip()
        assert entry["base"]["candidate_sha256"] == entry["sha256"]          # unchanged against main
    allowed = gate("export", "--reports", str(repo / "merged"), "--out", str(tmp_path / "all"),
                   "--config", str(repo / "gate.yml"), "--allow-failing")
    assert allowed.exit_code == 0, allowed.output
    tfl = read(tmp_path / "all" / "manifest.json")["models"]["tfl"]
    assert tfl["passed"] is False and tfl["status"] == "fail" and "FAILED its thresholds" in allowed.output


def test_export_refuses_a_candidate_that_is_not_the_gated_file(fleet, tmp_path):
    repo, _, _ = fleet
    reports = tmp_path / "reports"
    shutil.copytree(repo / "gate-report", reports)
    with open(reports / "k3" / "candidate.tflite", "ab") as f:
        f.write(b"\0")
    result = gate("export", "--reports", str(reports), "--out", str(tmp_path / "dist"), "--config",
                  str(repo / "gate.yml"))
    assert result.exit_code == 2 and "not the file that was gated" in result.output
    (tmp_path / "other.yml").write_text(CONFIG + "\n# changed\n")
    result = gate("export", "--reports", str(repo / "gate-report"), "--out", str(tmp_path / "dist"), "--config",
                  str(tmp_path / "other.yml"))
    assert result.exit_code == 2 and "made with another gate.yml" in result.output


def commit(repo: Path, message: str) -> None:
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", message)


def changed(repo: Path) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(main, ["models", "--config", str(repo / "gate.yml"), "--changed", "--base", "main",
                                       "--json", "--explain"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.output


def test_models_changed_lists_just_the_touched_model(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert gate("models", "--config", str(repo / "gate.yml"), "--json").output.strip() == json.dumps(NAMES)
    git(repo, "checkout", "-qb", "readme")
    (repo / "README.md").write_text("# models\n\nmore words\n")
    commit(repo, "docs only")
    code, names, output = changed(repo)
    assert (code, names) == (0, []) and "cnn: unchanged" in output
    # the merge of no legs says nothing needed gating
    merged = gate("report", "merge", "--expect", "[]", "--out", str(tmp_path / "none"))
    assert merged.exit_code == 0 and "nothing needed gating" in (tmp_path / "none" / "report.md").read_text()

    git(repo, "checkout", "-qb", "touch-k3", "main")
    shutil.copy(EXAMPLES / "regression" / "eval.npz", repo / "k3" / "eval.npz")   # other bytes, same path
    commit(repo, "new eval data for k3")
    code, names, output = changed(repo)
    assert (code, names) == (0, ["k3"]) and "k3: differs: eval" in output

    git(repo, "checkout", "-qb", "retune", "main")
    (repo / "gate.yml").write_text(CONFIG.replace("max_drop: 0.05", "max_drop: 0.04").replace(
        "# three models", "# three models, one gate, re-tuned"))
    commit(repo, "a default every model inherits")
    assert changed(repo)[1] == NAMES
    (repo / "gate.yml").write_text(CONFIG.replace("# three models", "# a comment only"))
    commit(repo, "comment only")
    assert changed(repo)[1] == []


def test_bad_input_exits_2_naming_what(tmp_path):
    repo = make_repo(tmp_path / "repo")
    config = str(repo / "gate.yml")
    unknown = gate("check", "-q", "--config", config, "--model", "nope", "--out", str(tmp_path / "out"))
    assert unknown.exit_code == 2 and "no model named 'nope'; gate.yml's models are: cnn, k3, tfl" in unknown.output
    assert read(tmp_path / "out" / "report.json")["error"]["field"] == "models"
    (repo / "gate.yml").write_text(CONFIG.replace("  tfl:\n", "  cnn:\n"))
    dup = gate("check", "-q", "--config", config, "--out", str(tmp_path / "dup"))
    assert dup.exit_code == 2 and "duplicate key 'cnn'" in dup.output
    assert gate("models", "--config", config).exit_code == 2
    (repo / "gate.yml").write_text("model: cnn/model.keras\ndata: {eval: cnn/eval.npz}\npolicy: float16\n")
    single = gate("models", "--config", config)
    assert single.exit_code == 2 and "no `models:` mapping" in single.output
    bad = gate("report", "merge", str(tmp_path / "missing-dir"), "--out", str(tmp_path / "m"))
    assert bad.exit_code == 2 and "expected a directory" in bad.output
    expect = gate("report", "merge", "--expect", "[1]", "--out", str(tmp_path / "m"))
    assert expect.exit_code == 2 and "JSON list of model names" in expect.output


def test_a_model_that_cannot_run_is_an_error_row_and_the_others_still_run(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "gate.yml").write_text(CONFIG.replace("cnn/eval.npz}}", "cnn/missing.npz}}").replace(
        "    thresholds: {accuracy: {min: 0.5}}", "    policy: int9").replace(
        "    data: {eval: tfl/eval.npz}", "    data: {eval: tfl/eval.npz}\n    benchmark: {runs: 0}"))
    result = gate("check", "-q", "--config", str(repo / "gate.yml"), "--out", str(tmp_path / "out"), "--no-cache")
    assert result.exit_code == 2, result.output
    combined = read(tmp_path / "out" / "report.json")
    assert [(r["name"], r["status"], r["exit_code"]) for r in combined["rows"]] == \
        [("cnn", "error", 2), ("k3", "error", 2), ("tfl", "error", 2)]
    fields = {n: r["error"]["field"] for n, r in combined["reports"].items()}
    assert fields == {"cnn": "models.cnn.data.eval", "k3": "models.k3.policy", "tfl": "models.tfl.benchmark.runs"}
    assert all((tmp_path / "out" / n / "report.json").is_file() for n in NAMES)


def test_export_from_one_models_report_directory(fleet, tmp_path):
    repo, _, _ = fleet
    result = gate("export", "--reports", str(repo / "gate-report" / "k3"), "--out", str(tmp_path),
                  "--config", str(repo / "gate.yml"))
    assert result.exit_code == 0, result.output
    manifest = read(tmp_path / "manifest.json")
    assert list(manifest["models"]) == ["k3"] and manifest["not_exported"] == {}
    assert hashlib.sha256((tmp_path / "k3.tflite").read_bytes()).hexdigest() == manifest["models"]["k3"]["sha256"]


def test_each_model_is_compared_with_its_own_entry_on_the_base(tmp_path):
    from gate.config.load import load_config
    from gate.run.parent.baseline import checkout

    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-qb", "pr")
    shutil.copy(EXAMPLES / "regression" / "eval.npz", repo / "k3" / "eval.npz")
    (repo / "gate.yml").write_text(CONFIG + "  new:\n    model: tfl/model.tflite\n    data: {eval: tfl/eval.npz}\n")
    commit(repo, "k3 data, a new model")
    seen = {}
    for name in ["cnn", "k3", "new"]:
        with checkout(load_config(repo / "gate.yml", name), env={}, ref="main") as base:
            seen[name] = (base.config.name if base.config else None, base.unchanged, base.notes)
    assert seen["cnn"] == ("cnn", True, ())
    assert seen["k3"] == ("k3", False, ())
    assert seen["new"][:2] == (None, False) and "has no model 'new'" in seen["new"][2][0]
