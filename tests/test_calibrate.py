"""gate calibrate: A/A on the candidate, suggested limits that validate as gate.yml."""
from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import write_config

from gate.cli import main
from gate.config.schema import Thresholds
from gate.run.calibration import Calibration


def test_suggestions_clear_the_noise_and_validate():
    cal = Calibration(3, (1.01, 0.99, 1.003), ((0.98, 1.03), (0.97, 1.0), (0.99, 1.02)), 1.0, 1000, 200, 0.9)
    assert abs(cal.latency_noise - 0.03) < 1e-12
    s = cal.suggestions()
    assert s["latency"]["max_regression"] == "6%"
    assert s["accuracy"]["max_drop_vs_base"] == 0.01   # two examples of 200
    Thresholds.model_validate(s)


def test_calibrate_command_on_the_tiny_model(tmp_path, tiny):
    cfg = write_config(tmp_path, tiny, policy="dynamic-range")
    result = CliRunner().invoke(main, ["calibrate", "--config", str(cfg), "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["latency_ratios"]) == 2 and all(0.8 < r < 1.25 for r in data["latency_ratios"])
    assert data["eval_examples"] == 200
    Thresholds.model_validate(data["suggested_thresholds"])


def test_calibrate_bad_config_is_exit_2(tmp_path):
    (tmp_path / "gate.yml").write_text("model: nope.keras\ndata: {eval: e.npz}\n")
    result = CliRunner().invoke(main, ["calibrate", "--config", str(tmp_path / "gate.yml")])
    assert result.exit_code == 2 and "model not found" in result.output
