"""The cache through `gate check`: a re-run with nothing changed takes the measured model
from the cache (no TensorFlow), any key part changing is a miss, a damaged entry is
measured again with a note, a committed cache directory is refused, the base branch's
candidate comes from the cache, two runs at once both finish."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_check, write_config

from gate.run.worker import cached

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache_on(monkeypatch):
    monkeypatch.delenv("GATE_NO_CACHE", raising=False)


def gate(tmp_path: Path, cfg: Path, cache: Path, *extra: str):
    return run_check(tmp_path, cfg, "--no-baseline", "--cache-dir", str(cache), *extra)


def stages(report: dict) -> set[str]:
    return set(report["timings_s"])


def comparable(report: dict) -> list:
    return [(c["name"], c["passed"], c["value"] if c["outcome"] == "point" else None) for c in report["checks"]]


def test_a_rerun_with_nothing_changed_comes_from_the_cache(tmp_path, tiny):
    cache = tmp_path / "cache"
    cfg = write_config(tmp_path, tiny, policy="dynamic-range",
                       thresholds={"size_kb": {"max": 50}, "accuracy": {"max_drop": 0.05}})
    _, cold = gate(tmp_path, cfg, cache)
    result, warm = gate(tmp_path, cfg, cache)
    assert result.exit_code == 0, result.output
    assert {"load", "convert_reference", "convert_candidate"} <= stages(cold)
    assert "cache" in stages(warm) and not {"load", "convert_reference", "convert_candidate"} & stages(warm)
    assert any("from the cache" in n for n in warm["notes"])
    assert warm["candidate"]["sha256"] == cold["candidate"]["sha256"]
    assert warm["original"] == cold["original"] and comparable(warm) == comparable(cold)
    assert warm["candidate"]["latency"] != cold["candidate"]["latency"]       # timed again, never cached


def test_a_warm_run_imports_no_tensorflow(tmp_path, tiny):
    cache = tmp_path / "cache"
    cfg = write_config(tmp_path, tiny, policy="int8", thresholds={"accuracy": {"min": 0.5}})
    gate(tmp_path, cfg, cache)
    code = ("import sys\nfrom gate.run.parent.run import run_gate\n"
            f"r = run_gate({str(cfg)!r}, {str(tmp_path / 'warm')!r}, in_process=True, compare_base=False, "
            f"cache_dir={str(cache)!r})\n"
            "print(r['status'], sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "pass []"


def test_every_key_part_changes_the_key(tmp_path, tiny, monkeypatch):
    from gate.config.load import load_config

    cfg_path = write_config(tmp_path, tiny, policy="int8")
    base = load_config(cfg_path)

    def key(cfg, **kw):
        from gate.measure.data import load_split

        return cached.measure_key(cfg, trust_model_code=kw.get("trust", False),
                                  eval_split=load_split(cfg.eval_path, "eval"), extra_metrics=kw.get("extra", ()))

    keys = {key(base)}
    assert key(base) in keys                                                     # stable
    keys.add(key(load_config(write_config(tmp_path, tiny, policy="dynamic-range"))))          # policy
    keys.add(key(load_config(write_config(tmp_path, tiny, evaluate={"top_k": [1, 3]}))))      # evaluation
    other_eval = tmp_path / "eval2.npz"
    shutil.copy(tiny.train, other_eval)
    keys.add(key(load_config(write_config(tmp_path, tiny, data={"train": str(tiny.train),
                                                                    "eval": str(other_eval)}))))  # eval data
    keys.add(key(load_config(write_config(tmp_path, tiny, data={"train": str(tiny.eval),
                                                                    "eval": str(tiny.eval)}))))   # train data
    keys.add(key(load_config(write_config(tmp_path, tiny, model=str(tiny.h5)))))                # model file
    cfg = load_config(write_config(tmp_path, tiny, policy="int8"))
    keys.add(key(cfg, trust=True))                                                # trust
    keys.add(key(cfg, extra=("mae",)))                                            # metrics looked up
    versions = cached.tool_versions()
    monkeypatch.setattr(cached, "tool_versions", lambda: {**versions, "tensorflow": "9.9.9"})
    keys.add(key(cfg))                                                            # tool versions
    assert len(keys) == 9


def test_a_damaged_entry_is_measured_again_with_a_note(tmp_path, tiny):
    cache = tmp_path / "cache"
    cfg = write_config(tmp_path, tiny, policy="int8")
    _, cold = gate(tmp_path, cfg, cache)
    for blob in cache.glob("*/blob*.bin"):
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
    result, again = gate(tmp_path, cfg, cache)
    assert result.exit_code == 0, result.output
    assert "load" in stages(again) and any("ignored" in n and "sha256" in n for n in again["notes"])
    assert again["candidate"]["sha256"] == cold["candidate"]["sha256"]
    _, third = gate(tmp_path, cfg, cache)                      # the entry was written again
    assert "cache" in stages(third)


def test_a_cache_committed_to_the_repository_is_not_used(tmp_path, tiny):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    cfg = write_config(repo, tiny, policy="int8")
    cache = repo / ".gate-cache"
    gate(tmp_path, cfg, cache)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "planted"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
    _, report = gate(tmp_path, cfg, cache)
    assert "load" in stages(report) and "cache" not in stages(report)
    assert any("holds files committed to the repository" in n for n in report["notes"])


def test_two_runs_at_once_both_finish_and_leave_valid_entries(tmp_path, tiny):
    cache = tmp_path / "cache"
    procs = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        cfg = write_config(d, tiny, policy="dynamic-range")
        procs.append(subprocess.Popen([sys.executable, "-m", "gate", "check", "-c", str(cfg), "-o", str(d / "out"),
                                       "--no-baseline", "-q", "--cache-dir", str(cache)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    from gate.run.worker.cache import Cache

    reader = Cache(cache)
    entries = [path.name for _, _, path in reader.entries()]
    assert entries and all(reader.get(name) is not None for name in entries) and reader.notes == []


def test_the_base_branch_candidate_comes_from_the_cache(tmp_path, tiny):
    """main gated once; a pull request whose base is that commit measures its own model and
    takes the base's from the cache."""
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("train", "eval"):
        shutil.copy(getattr(tiny, name), repo / f"{name}.npz")
    shutil.copy(tiny.keras, repo / "model.keras")
    config = {"model": "model.keras", "data": {"train": "train.npz", "eval": "eval.npz"}, "policy": "int8",
              "thresholds": {"size": {"max_increase": "50%"}}, "benchmark": {"warmup": 2, "runs": 10}}
    (repo / "gate.yml").write_text(yaml.safe_dump(config))
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "main")
    cache = tmp_path / "cache"
    run_check(tmp_path / "main-run", repo / "gate.yml", "--no-baseline", "--cache-dir", str(cache))
    git("checkout", "-q", "-b", "pr")
    (repo / "gate.yml").write_text(yaml.safe_dump({**config, "policy": "dynamic-range"}))
    git("commit", "-q", "-am", "pr")
    result, report = run_check(tmp_path / "pr-run", repo / "gate.yml", "--baseline", "main",
                               "--cache-dir", str(cache))
    assert result.exit_code in (0, 1), result.output
    assert "base_cache" in stages(report) and "base_load" not in stages(report)
    assert "load" in stages(report)                      # the PR's own model is new: measured
    assert json.dumps(report["baseline"]["candidate"])
