"""`gate check` end to end on the tiny model: exit codes, reports on every path."""
from __future__ import annotations

import pytest
from conftest import run_check, train_samples, write_config


def test_pass_exits_0_with_every_check(passing_run):
    result, report = passing_run
    assert result.exit_code == 0, result.output
    assert report["status"] == "pass" and report["exit_code"] == 0
    assert [c["name"] for c in report["checks"]] == ["size_kb.max", "compression.min", "accuracy.min",
                                                     "accuracy.max_drop", "latency_ms.p50_max",
                                                     "latency_ms.p99_max", "latency.max_ratio"]
    assert "PASS" in result.output and "7 check(s) passed" in result.output


def test_report_has_reference_and_candidate_figures(passing_run):
    _, r = passing_run
    assert r["candidate"]["quantization"] == "int8" and r["reference"]["quantization"] == "none"
    assert r["candidate"]["bytes_raw"] < r["reference"]["bytes_raw"]
    assert r["candidate"]["bytes_gzip"] < r["candidate"]["bytes_raw"]
    assert r["candidate"]["calibration_samples"] == 200
    for role in ("reference", "candidate"):
        lat = r[role]["latency"]
        assert lat["runs"] == 20 and lat["p50_ms"] > 0
        assert len(r[role]["evaluation"]["predictions"]) == 200
    assert len(r["original"]["predictions"]) == 200
    assert r["benchmark"]["settings"]["threads"] == 1
    for dist in ("model-gate", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "python"):
        assert r["versions"][dist]
    assert r["model"]["params"] > 0 and r["data"]["eval"]["examples"] == 200


def test_tightened_threshold_fails_with_exit_1_and_says_by_how_much(tiny, tmp_path):
    cfg = write_config(tmp_path, tiny, thresholds={"size_kb": {"max": 1}})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 1
    assert report["status"] == "fail"
    [check] = report["checks"]
    assert not check["passed"] and check["margin"] < 0
    assert "size_kb.max FAILED" in result.output and "over the limit by" in result.output
    lines = cfg.read_text().splitlines()
    assert lines[check["line"] - 1].strip() == "max: 1"     # the check points at its threshold in gate.yml


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c.update(model="missing.keras"), "model"),
    (lambda c: c["data"].update(eval="missing.npz"), "data.eval"),
    (lambda c: c.update(policy="no-such-preset"), "policy"),
    (lambda c: c.update(thresholds={"accuracy": {"min": 2}}), "thresholds.accuracy.min"),
    (lambda c: c.update(benchmark={"runs": "many"}), "benchmark.runs"),
    (lambda c: c.update(extra_key=1), "extra_key"),
])
def test_bad_config_exits_2_with_an_error_report(tiny, tmp_path, mutate, field):
    import yaml

    cfg = write_config(tmp_path, tiny)
    data = yaml.safe_load(cfg.read_text())
    mutate(data)
    cfg.write_text(yaml.safe_dump(data))
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 2
    assert report["status"] == "error" and report["error"]["field"] == field
    assert report["error"]["file"].endswith("gate.yml")
    assert field in result.output


def test_data_that_does_not_fit_the_model_exits_2(tiny, tmp_path):
    import numpy as np

    bad = tmp_path / "eval.npz"
    np.savez(bad, x=np.zeros((4, 8, 8), np.float32), y=np.zeros(4, int))
    cfg = write_config(tmp_path, tiny, data={"train": str(tiny.train), "eval": str(bad)})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 2
    assert report["error"]["kind"] == "data" and report["error"]["field"] == "data.eval.x"
    assert "the model expects (N, 8, 8, 1)" in report["error"]["message"]
    assert report["model"]["format"] == "keras"  # what was done before the error is kept


def test_bad_yaml_exits_2(tmp_path):
    cfg = tmp_path / "gate.yml"
    cfg.write_text("model: [unclosed\n")
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 2 and report["error"]["line"] == 2
    assert "invalid YAML" in report["error"]["message"]


def test_internal_error_exits_3_with_a_report(tiny, tmp_path, monkeypatch):
    import gate.run.worker.check

    def broken(*_):
        raise RuntimeError("boom")

    monkeypatch.setattr(gate.run.worker.check, "judge", broken)
    result, report = run_check(tmp_path, write_config(tmp_path, tiny), "--in-process")
    assert result.exit_code == 3
    assert report["error"]["kind"] == "internal" and "RuntimeError: boom" in report["error"]["message"]
    assert any("traceback" in n for n in report["notes"])


def test_committed_tflite_is_measured_as_is(tiny_model, tiny, tmp_path):
    from gate.measure.convert import ConvertSpec, to_tflite
    
    samples = train_samples(tiny, 20)
    path = tmp_path / "model.tflite"
    path.write_bytes(to_tflite(tiny_model.keras, ConvertSpec(quantization="int8", io="int8"), samples).content)
    cfg = write_config(tmp_path, tiny, model=str(path), policy=None,
                       thresholds={"accuracy": {"min": 0.5, "max_drop": 0.0}})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 0, result.output
    assert report["model"]["format"] == "tflite" and report["candidate"]["bytes_raw"] == path.stat().st_size
    assert report["candidate"]["io"] == "int8"
    assert any("measured as it is" in n for n in report["notes"])


def test_policy_with_steps_reports_stages_and_keeps_reference_untouched(tiny, tmp_path, passing_run):
    policy = {"steps": [{"prune": {"final_sparsity": 0.6, "layers": {"exclude_names": ["classifier"]},
                                   "finetune": {"epochs": 1}}},
                        {"qat": {"preserve": ["sparsity"], "finetune": {"epochs": 1}}}],
              "verify": {"on_loss": "fail"}, "convert": {"quantization": "int8"}}
    cfg = write_config(tmp_path, tiny, policy=policy, thresholds={"accuracy": {"max_drop": 0.5}})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 0, result.output
    names = [s["name"] for s in report["stages"]]
    assert names == ["original", "pruned", "qat", "converted"]
    pruned, converted = report["stages"][1], report["stages"][3]
    assert pruned["layers"]["conv"]["sparsity"] == pytest.approx(0.6, abs=0.03)
    assert pruned["layers"]["classifier"]["sparsity"] == 0.0
    assert converted["layers"]["conv"]["sparsity"] == pytest.approx(0.6, abs=0.03)  # zeros survived PQAT
    assert report["verification"] == {"on_loss": "fail", "findings": []}
    assert "stages" in result.output
    # The reference figures come from the untouched model: identical to a run without steps.
    _, plain = passing_run
    assert report["reference"]["sha256"] == plain["reference"]["sha256"]
    assert report["original"]["accuracy"] == plain["original"]["accuracy"]


def test_verification_failure_is_a_failing_check(tiny, tmp_path):
    policy = {"steps": [{"prune": {"final_sparsity": 0.8, "finetune": {"epochs": 1}}},
                        {"cluster": {"clusters": 4, "finetune": {"epochs": 1}}}],   # drops the zeros
              "verify": {"on_loss": "fail"}, "convert": {"quantization": "dynamic"}}
    cfg = write_config(tmp_path, tiny, policy=policy, thresholds={})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 1
    failed = [c for c in report["checks"] if not c["passed"]]
    assert failed and all(c["name"] == "verify.sparsity" for c in failed)
    assert "sparsity fell from" in failed[0]["detail"]
