"""Hostile models through `gate check` (isolated worker): each is refused before anything
executes, the canary its payload would write is never written, the gate exits 2 with a
report. A worker that crashes or hangs becomes exit 2 with a report; the gate survives."""
from __future__ import annotations

import os
import textwrap

import hostile_models as hm
import pytest
from conftest import run_check, write_config


@pytest.fixture(scope="module")
def K():
    from gate.measure.tfenv import keras

    return keras()


def check_refused(tmp_path, tiny, model_path, *texts):
    canary = tmp_path / "canary"
    result, report = run_check(tmp_path, write_config(tmp_path, tiny, model=str(model_path), policy="float32"))
    assert result.exit_code == 2, result.output
    assert report["status"] == "error" and report["error"]["kind"] == "model"
    for text in texts:
        assert text in report["error"]["message"], report["error"]["message"]
    assert not canary.exists()
    return report


def test_lambda_in_keras(tmp_path, tiny, K):
    path = tmp_path / "m.keras"
    hm.lambda_model(K, tmp_path / "canary").save(path)
    check_refused(tmp_path, tiny, path, "'evil' (class Lambda)")


def test_lambda_nested_in_a_sub_model(tmp_path, tiny, K):
    path = tmp_path / "m.keras"
    hm.nested_lambda_model(K, tmp_path / "canary").save(path)
    check_refused(tmp_path, tiny, path, "Lambda")


def test_lambda_in_h5(tmp_path, tiny, K):
    path = tmp_path / "m.h5"
    hm.lambda_model(K, tmp_path / "canary").save(path)
    check_refused(tmp_path, tiny, path, "Lambda")


def test_layer_naming_subprocess_popen(tmp_path, tiny):
    path = hm.rewrite_keras(tiny.keras, tmp_path / "m.keras",
                            edit_config=hm.set_class(1, "Popen", module="subprocess"))
    check_refused(tmp_path, tiny, path, "(class Popen)", "is not a built-in Keras")


def test_h5_external_link_to_a_canary(tmp_path, tiny):
    path = hm.copy_file(tiny.h5, tmp_path / "m.h5")
    hm.add_external_link(path, tmp_path / "secret.h5")   # the file HDF5 would open when loading
    check_refused(tmp_path, tiny, path, "external link")


def test_zip_bomb(tmp_path, tiny):
    path = hm.write_zip_bomb(tiny.keras, tmp_path / "m.keras", mib=64)
    check_refused(tmp_path, tiny, path, "expands 1029x", "zip bomb")


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.tflite"])
def test_random_bytes(tmp_path, tiny, name):
    check_refused(tmp_path, tiny, hm.random_file(tmp_path / name), "content is none of")


def test_truncated_tflite(tmp_path, tiny, tiny_model):
    from gate.measure.convert import reference_spec, to_tflite

    full = tmp_path / "full.tflite"
    full.write_bytes(to_tflite(tiny_model.keras, reference_spec()).content)
    check_refused(tmp_path, tiny, hm.truncated(full, tmp_path / "m.tflite", full.stat().st_size // 2))


def test_savedmodel_needs_trust(tmp_path, tiny, tiny_model):
    path = tmp_path / "sm"
    tiny_model.keras.save(path, save_format="tf")
    check_refused(tmp_path, tiny, path, "trust_model_code")


def test_worker_that_crashes_the_interpreter_is_exit_2(tmp_path, tiny, monkeypatch):
    """A real SIGSEGV inside the worker, where LiteRT runs the model (mutating .tflite
    bytes did not crash LiteRT 2.3, which verifies the flatbuffer: the crash is injected
    into the worker through sitecustomize)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, signal
        import ai_edge_litert.interpreter as li
        def crash(self, *a, **k):
            os.kill(os.getpid(), signal.SIGSEGV)
        li.Interpreter.invoke = crash
    """))
    monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result, report = run_check(tmp_path, write_config(tmp_path, tiny, policy="float32"))
    assert result.exit_code == 2
    assert "crashed with SIGSEGV" in report["error"]["message"]
    assert report["model"]["format"] == "keras"   # what the worker had measured is kept


def test_worker_over_the_time_limit_is_exit_2(tmp_path, tiny):
    cfg = write_config(tmp_path, tiny, limits={"timeout_s": 0.5})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 2
    assert "limits.timeout_s = 0.5 s" in report["error"]["message"]


def test_worker_over_the_memory_limit_is_exit_2(tmp_path, tiny):
    cfg = write_config(tmp_path, tiny, limits={"memory_mb": 600})
    result, report = run_check(tmp_path, cfg)
    assert result.exit_code == 2, report
    assert report["error"]["field"] == "limits.memory_mb" and "ran out of memory" in report["error"]["message"]


def test_ctrl_c_writes_an_error_report_and_exits_130(tmp_path, tiny):
    import signal
    import subprocess
    import sys
    import time

    cfg = write_config(tmp_path, tiny, policy="float32", benchmark={"warmup": 1, "runs": 1, "min_time_s": 60})
    out = tmp_path / "out"
    # A shell's background job inherits SIGINT ignored (and Python keeps it so): restore
    # the terminal default, whatever ran this test.
    proc = subprocess.Popen([sys.executable, "-m", "gate", "check", "--config", str(cfg), "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    for line in proc.stderr:
        if "benchmarking" in line or time.time() > deadline:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C does: the whole process group
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"gate did not stop after Ctrl-C; stderr:\n{err[-3000:]}") from None
    assert proc.returncode == 130, err[-3000:]
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "error" and "interrupted" in report["error"]["message"]
    assert (out / "report.md").exists()


def test_modules_in_the_repository_cannot_stand_in_for_real_packages(tmp_path, tiny, monkeypatch):
    """The worker and the memory probe run with `python -P`: a repository that commits a
    numpy.py, tensorflow.py or gate/ next to gate.yml (the working directory in the
    Action) does not get them imported."""
    canary = tmp_path / "canary"
    payload = f"import pathlib; pathlib.Path({str(canary)!r}).write_text(__name__)\nraise ImportError('hostile')\n"
    repo = tmp_path / "repo"
    (repo / "gate").mkdir(parents=True)
    for name in ("numpy.py", "tensorflow.py", "ai_edge_litert.py", "gate/__init__.py"):
        (repo / name).write_text(payload)
    monkeypatch.chdir(repo)
    result, report = run_check(tmp_path, write_config(tmp_path, tiny, policy="float32"))
    assert result.exit_code == 0, result.output
    assert report["candidate"]["proxies"]["rss_delta_bytes"] is not None   # the memory probe ran too
    assert not canary.exists()
