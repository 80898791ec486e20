"""benchmark.target.adb: LiteRT's benchmark_model output read from captured samples, and the
adb target driven against the stand-ins of tests/standin/ (one emulated device)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.config.schema import AdbTarget as AdbSpec
from gate.config.schema import BenchmarkSpec
from gate.errors import TargetCrash, TargetError
from gate.measure.targets.benchmark_model import parse
from gate.measure.targets.delegation import from_run
from tests.conftest import run_check, write_config
from tests.standin_tools import launcher, wrong_abi_binary

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"


# -- captured output ------------------------------------------------------------------------

def test_litert_readme_op_profile():
    run = parse((FIXTURES / "litert_readme_op_profiling.txt").read_text())
    assert (run.init_us, run.warmup_avg_us, run.inference_avg_us) == (38467, 83235, 79760.9)
    assert len(run.ops) == 31
    assert run.ops[0].node_type == "CONV_2D" and run.ops[0].name == "MobilenetV1/MobilenetV1/Conv2d_0/Relu6"
    assert run.ops[-1].node_type == "SOFTMAX" and run.ops[-1].avg_ms == pytest.approx(0.029)
    d = from_run(run, "none")
    assert d.total_ops == 31 and d.accelerated_ops == 0 and len(d.cpu_ops) == 31


def test_field_notes_lines():
    run = parse((FIXTURES / "field_notes_benchmark_model.txt").read_text())
    assert (run.init_us, run.first_us, run.warmup_avg_us, run.inference_avg_us) == (25317, 16143, 10573.2, 10407.1)
    assert run.inference.count == 96 and run.inference.min == 10021 and run.inference.std == 255
    assert (run.memory_init_mb, run.memory_overall_mb) == (6.01953, 13.0742)


def test_litert_gpu_delegation_line():
    text = (FIXTURES / "litert_cmake_example_gpu.txt").read_text()
    text += "\nINFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4\n"
    run = parse(text)
    assert run.replacements[0].delegate == "LITERT_OPENGL" and run.replacements[0].replaced == 66
    d = from_run(run, "gpu")
    assert d.full and d.share == 1.0 and d.partitions == 1


def test_unfinished_run_is_refused():
    from gate.measure.targets.benchmark_model import OutputError

    with pytest.raises(OutputError):
        parse("STARTING!\nLoaded model /data/local/tmp/m.tflite\n")


# -- the stand-in device ----------------------------------------------------------------------

@pytest.fixture
def device(tmp_path, monkeypatch):
    root = tmp_path / "device"
    root.mkdir()
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("STANDIN_ADB_ROOT", str(root))
    monkeypatch.setenv("STANDIN_ADB_DEVICES", "R5CT1234:device")
    monkeypatch.delenv("STANDIN_CPU_OPS", raising=False)
    monkeypatch.delenv("STANDIN_CRASH_AFTER", raising=False)
    adb = launcher(tools, "adb", "adb.py")
    bm = launcher(tools, "benchmark_model", "benchmark_model.py")
    return root, adb, bm


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    """The tiny model's float and int8 .tflite."""
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import to_tflite
    from gate.measure.model import load_model

    model = load_model(tiny.keras).keras
    ref = to_tflite(model, ConvertSpec())
    cand = to_tflite(model, ConvertSpec(quantization="dynamic"))
    return ref.content, cand.content


def adb_target(adb, bm, tmp_path, **spec):
    from gate.measure.targets.adb import AdbTarget

    return AdbTarget(AdbSpec(benchmark_model=str(bm), adb=str(adb), **spec), tmp_path)


def test_no_device_names_the_serial_field(device, tmp_path, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_ADB_DEVICES", "")
    with pytest.raises(TargetError) as err:
        adb_target(adb, bm, tmp_path)
    assert err.value.field == "benchmark.target.adb.serial" and err.value.exit_code == 2
    assert "no Android device attached" in err.value.message


def test_wrong_serial_lists_the_attached_ones(device, tmp_path):
    root, adb, bm = device
    with pytest.raises(TargetError) as err:
        adb_target(adb, bm, tmp_path, serial="emulator-5554")
    assert err.value.field == "benchmark.target.adb.serial"
    assert "emulator-5554" in err.value.message and "R5CT1234 (device)" in err.value.message


def test_wrong_abi_binary_is_named(device, tmp_path, models):
    root, adb, _ = device
    target = adb_target(adb, wrong_abi_binary(tmp_path), tmp_path)
    with pytest.raises(TargetError) as err:
        target.run_model("candidate", models[1], threads=1, warmup=1, runs=2)
    target.close()
    assert err.value.field == "benchmark.target.adb.benchmark_model"
    assert "does not run on Pixel 7 (arm64-v8a" in err.value.message
    assert "Exec format error" in err.value.message and "arm64-v8a" in err.value.hint


def test_crash_on_device_is_named(device, tmp_path, models, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_CRASH_AFTER", "0")
    target = adb_target(adb, bm, tmp_path)
    with pytest.raises(TargetCrash) as err:
        target.run_model("candidate", models[1], threads=1, warmup=1, runs=2)
    target.close()
    assert "crashed on Pixel 7" in err.value.message and "signal 11" in err.value.message
    assert err.value.exit_code == 2


def test_benchmark_pushes_runs_with_flags_and_cleans_up(device, tmp_path, models, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_CPU_OPS", "SOFTMAX")
    target = adb_target(adb, bm, tmp_path, delegate="gpu", flags=["--gpu_precision_loss_allowed=false"])
    assert target.where.facts == {"serial": "R5CT1234", "model": "Pixel 7", "abi": "arm64-v8a", "android": "14",
                                  "tool": "benchmark_model", "delegate": "gpu"}
    result = target.benchmark({"reference": models[0], "candidate": models[1]}, {},
                              BenchmarkSpec(threads=2, warmup=3, runs=7))
    assert set(result.stats) == {"reference", "candidate"}
    cand = result.stats["candidate"]
    assert cand.runs == 14 and cand.peak_memory_mb == 14.25 and 0 < cand.min_ms <= cand.p50_ms <= cand.max_ms
    assert result.settings["measured_on"].startswith("Pixel 7 (arm64-v8a, Android 14")
    d = target.delegation("candidate", models[1])
    assert d.accelerator == "TfLiteGpuDelegateV2" and not d.full and 0 < d.share < 1
    assert any(op.startswith("SOFTMAX") for op in d.cpu_ops) and d.partitions == 1
    device_dir = root / "data/local/tmp/model-gate"
    assert (device_dir / "benchmark_model").is_file() and len(list(device_dir.glob("*.tflite"))) == 2
    target.close()
    assert not device_dir.exists()
    calls = [eval(line) for line in (root / "adb.log").read_text().splitlines()]
    runs = [c[-1] for c in calls if c[2:3] == ["shell"] and "benchmark_model --graph" in c[-1]]
    assert len(runs) == 6     # 2 rounds x 2 models, then one profiled run each
    assert all("--num_threads=2" in r and "--use_gpu=true" in r and "--gpu_precision_loss_allowed=false" in r
               for r in runs)
    assert all("--warmup_runs=3 --num_runs=7" in r for r in runs[:4])
    assert sum("--enable_op_profiling=true --report_peak_memory_footprint=true" in r for r in runs) == 2
    graphs = [r.split("--graph=")[1].split()[0] for r in runs[:4]]
    assert graphs[0] != graphs[1] and graphs[1] == graphs[2]   # alternating, order flipped in round 2


def test_ab_on_device_uses_the_same_statistics(device, tmp_path, models):
    from gate.verdict.abtest import compare_sampled

    root, adb, bm = device
    target = adb_target(adb, bm, tmp_path, rounds=4)
    sampler = target.sampler(models[0], models[0], {}, threads=1, warmup=2, runs=30)
    verdict = compare_sampled(sampler, max_ratio=3.0, rounds=4, time_budget_s=60)
    target.close()
    assert verdict.outcome == "pass" and verdict.rounds >= 4 and 0.3 < verdict.ratio < 3
    assert verdict.settings["measured_on"].startswith("Pixel 7")


# -- gate check --------------------------------------------------------------------------------

def adb_config(tmp_path, tiny, adb, bm, **thresholds):
    return write_config(tmp_path, tiny, policy="dynamic-range", benchmark={
        "threads": 1, "warmup": 2, "runs": 20,
        "target": {"adb": {"benchmark_model": str(bm), "adb": str(adb), "delegate": "gpu", "rounds": 2}}},
        thresholds=thresholds or {"accuracy": {"max_drop": 0.05}})


def test_gate_check_on_device_fails_delegation_naming_cpu_ops(device, tmp_path, tiny, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_CPU_OPS", "SOFTMAX")
    cfg = adb_config(tmp_path, tiny, adb, bm, delegation={"min_share": 0.99},
                     latency={"max_ratio": 50, "time_budget_s": 5})
    result, report = run_check(tmp_path, cfg, "--no-baseline")
    assert result.exit_code == 1, result.output
    assert report["target"]["kind"] == "adb" and report["target"]["name"].startswith("Pixel 7 (arm64-v8a")
    assert report["benchmark"]["settings"]["measured_on"] == report["target"]["name"]
    checks = {c["name"]: c for c in report["checks"]}
    share = checks["delegation.min_share"]
    assert not share["passed"] and "SOFTMAX" in share["detail"] and "left on the CPU" in share["detail"]
    assert "measured on Pixel 7" in checks["latency.max_ratio"]["detail"]
    assert report["delegation"]["candidate"]["accelerator"] == "TfLiteGpuDelegateV2"
    from gate.report.model import Report
    from gate.report.record import ModelDelegation

    typed = Report.model_validate(report)       # the target's parts are typed sections of the run record
    assert isinstance(typed.delegation.candidate, ModelDelegation) and typed.delegation.candidate.share < 0.99
    assert typed.target.kind == "adb" and typed.target.facts
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Latency measured on **Pixel 7 (arm64-v8a" in md and "CPU: SOFTMAX" in md
    assert "latency on Pixel 7" in result.output      # the terminal's measurements table
    assert not (root / "data/local/tmp/model-gate").exists()


def test_crash_during_the_ab_rounds_leaves_latency_not_judged(device, tmp_path, tiny, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_CRASH_AFTER", "6")     # the table's 4 runs and 2 profiles pass, the A/B's crash
    cfg = adb_config(tmp_path, tiny, adb, bm, latency={"max_ratio": 50, "time_budget_s": 5})
    result, report = run_check(tmp_path, cfg, "--no-baseline")
    assert result.exit_code == 1, result.output
    (check,) = report["checks"]
    assert check["outcome"] == "not_judged" and not check["passed"]
    assert "crashed on Pixel 7" in check["detail"] and "signal 11" in check["detail"]
    assert report["candidate"]["latency"]["runs"] == 40       # the table, measured before the crash, is kept
    assert not (root / "data/local/tmp/model-gate").exists()


def test_gate_check_without_device_exits_2(device, tmp_path, tiny, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_ADB_DEVICES", "")
    result, report = run_check(tmp_path, adb_config(tmp_path, tiny, adb, bm), "--no-baseline")
    assert result.exit_code == 2 and report["error"]["field"] == "benchmark.target.adb.serial"
    assert "benchmark.target.adb.serial" in result.output


def test_target_local_overrides_gate_yml(device, tmp_path, tiny, monkeypatch):
    root, adb, bm = device
    monkeypatch.setenv("STANDIN_ADB_DEVICES", "")      # no device: only --target local can pass
    result, report = run_check(tmp_path, adb_config(tmp_path, tiny, adb, bm), "--no-baseline", "--target", "local")
    assert result.exit_code == 0, result.output
    assert report["target"]["kind"] == "local" and report["target"]["name"].startswith("runner CPU")
    assert json.dumps(report).count("Pixel 7") == 0


# -- gate.yml ----------------------------------------------------------------------------------

def test_target_settings_are_validated(tmp_path, tiny):
    from gate.config.load import load_config
    from gate.errors import ConfigError

    def load(**over):
        return load_config(write_config(tmp_path, tiny, **over))

    cfg = load(benchmark={"target": {"adb": {"benchmark_model": "bm"}}})
    assert cfg.benchmark.target_kind == "adb" and cfg.benchmark.target.adb.rounds == 6
    with pytest.raises(ConfigError) as err:
        load(benchmark={"target": {"adb": {"benchmark_model": "bm", "flags": ["--num_threads=4"]}}})
    assert "benchmark.target" in err.value.render() and "--num_threads is set by the gate" in err.value.message
    with pytest.raises(ConfigError) as err:
        load(benchmark={"target": {"adb": {"benchmark_model": "bm"}, "ssh": {"host": "h", "user": "u", "key": "K",
                                                                               "known_hosts": "kh"}}})
    assert "exactly one of adb or ssh" in err.value.message
    with pytest.raises(ConfigError) as err:
        load(evaluate={"on_target": True})
    assert "evaluate.on_target" in err.value.message and "ssh" in err.value.message
    with pytest.raises(ConfigError) as err:
        load(thresholds={"delegation": {"full": False}})
    assert "full: false judges nothing" in err.value.message


def test_table_figures_from_captured_runs():
    from gate.measure.targets.adb import latency

    notes = parse((FIXTURES / "field_notes_benchmark_model.txt").read_text())
    readme = parse((FIXTURES / "litert_readme_op_profiling.txt").read_text())
    lat = latency([notes, notes], peak_mb=None)
    assert lat.init_ms == pytest.approx(25.317) and lat.first_ms == pytest.approx(16.143)
    assert lat.p50_ms == pytest.approx(10.4071) and lat.runs == 192 and lat.min_ms == pytest.approx(10.021)
    old = latency([readme], peak_mb=None)      # older summary line: no first inference, no Stat line
    assert old.p50_ms == pytest.approx(79.7609) and old.first_ms == pytest.approx(83.235)
