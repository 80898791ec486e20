"""The interleaved benchmark: counts, statistics and settings recorded (no timing asserts)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import train_samples

from gate.config.schema import BenchmarkSpec, ConvertSpec
from gate.measure.bench import benchmark, summarize
from gate.measure.convert import reference_spec, to_tflite


def test_summarize_known_values():
    s = summarize(np.array([1_000_000, 2_000_000, 3_000_000, 4_000_000]), 5.0, 6.0)
    assert s.runs == 4 and s.min_ms == 1.0 and s.max_ms == 4.0 and s.mean_ms == 2.5
    assert s.p50_ms == pytest.approx(2.5) and s.std_ms == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.init_ms == 5.0 and s.first_ms == 6.0


@pytest.fixture(scope="module")
def two_models(tiny_model):
    return {"reference": to_tflite(tiny_model.keras, reference_spec()).content,
            "candidate": to_tflite(tiny_model.keras, ConvertSpec(quantization="dynamic")).content}


def test_both_models_timed_same_number_of_runs(two_models, tiny):
    result = benchmark(two_models, tiny.x_eval[:1], BenchmarkSpec(threads=1, warmup=3, runs=25))
    assert set(result.stats) == {"reference", "candidate"}
    for s in result.stats.values():
        assert s.runs == 25
        assert 0 < s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
        assert s.init_ms > 0 and s.first_ms > 0
    st = result.settings
    assert st["threads"] == 1 and st["warmup"] == 3 and st["runs"] == 25
    assert "ai_edge_litert" in st["interpreter"] and st["cpu"]


def test_min_time_extends_the_runs(two_models, tiny):
    result = benchmark(two_models, tiny.x_eval[:1], BenchmarkSpec(warmup=0, runs=1, min_time_s=0.05))
    assert result.stats["candidate"].runs > 1
    assert result.stats["candidate"].runs == result.stats["reference"].runs


def test_integer_io_model_benchmarks_on_real_input(tiny_model, tiny):
    
    samples = train_samples(tiny, 20)
    content = to_tflite(tiny_model.keras, ConvertSpec(quantization="int8", io="uint8"), samples).content
    result = benchmark({"candidate": content}, tiny.x_eval[:1], BenchmarkSpec(warmup=1, runs=5))
    assert result.stats["candidate"].runs == 5


def test_the_table_p50_is_mentioned_only_when_it_would_change_the_reading():
    from gate.measure.bench import BenchResult, Latency
    from gate.verdict.check import Check
    from gate.verdict.latency_note import latency_agreement

    def lat(p50):
        return Latency(init_ms=1, first_ms=1, runs=10, mean_ms=p50, std_ms=0, min_ms=p50, p50_ms=p50, p90_ms=p50,
                       p99_ms=p50, max_ms=p50)

    ab = Check(name="latency.max_ratio", metric="latency vs float TFLite", value=0.43, limit=1.5, direction="<=",
               unit="x", passed=True, outcome="pass", ci_low=0.41, ci_high=0.44)
    # outside the interval but on the same side of the limit: the reading is the same, no note
    assert latency_agreement(BenchResult({"reference": lat(1.0), "candidate": lat(0.47)}, {}), [ab]) is None
    # the table alone would fail a check the A/B passed: one sentence says so
    note = latency_agreement(BenchResult({"reference": lat(1.0), "candidate": lat(1.6)}, {}), [ab])
    assert note.startswith("The measurements table's p50 ratio 1.60× is over the latency.max_ratio limit 1.50×, "
                           "but the check passed on the A/B test's interval 0.41× to 0.44×")
    assert note.count(". ") == 0 and note.endswith(".")
    failed = ab.model_copy(update={"passed": False, "outcome": "fail", "ci_low": 1.6, "ci_high": 1.7})
    assert "is within" in latency_agreement(BenchResult({"reference": lat(1.0), "candidate": lat(1.2)}, {}),
                                            [failed])
    assert latency_agreement(BenchResult({"reference": lat(1.0), "candidate": lat(1.6)}, {}), []) is None
