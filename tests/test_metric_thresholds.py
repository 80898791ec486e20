"""thresholds.metrics: rows generated per configured metric, judged on constructed evidence
(no TF): absolute limits, changes vs the original (relative for error metrics, points for
accuracy-like ones) with paired bootstrap intervals, vs the base, and what cannot be judged."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from gate.config.schema import BenchmarkSpec, EvaluateSpec, Thresholds
from gate.measure.scores import MetricValue
from gate.measure.tasks import OutputTask
from gate.verdict.evidence import Evidence, Side
from gate.verdict.registry import configured, judge
from gate.verdict.stats import metric_change

RNG = np.random.default_rng(0)
ERR_ORIG = np.abs(RNG.normal(40, 10, 400))
ERR_CAND = ERR_ORIG * 1.02          # 2 % more error on every example


def mv(name, value, per=None, why=""):
    return MetricValue(name, name.rsplit("/", 1)[-1], name.rpartition("/")[0] or "out", value, per, why)


def side(metrics, acc=None):
    return Side(acc or {}, metrics={m.name: m for m in metrics})


REG = {"out": OutputTask("out", "regression", 1, "linear")}
ORIG = side([mv("mae", ERR_ORIG.mean(), ERR_ORIG), mv("rmse", 45.0, ERR_ORIG ** 2)])
CAND = side([mv("mae", ERR_CAND.mean(), ERR_CAND), mv("rmse", 46.0, ERR_CAND ** 2), mv("snr_db", 38.0),
             mv("cosine", 0.999, np.full(400, 0.999)), mv("accuracy", None, why="no targets for output 'out'")])


def evidence(**kw):
    base = dict(original=ORIG, reference=side([mv("snr_db", 200.0)]), candidate=CAND, labels=None,
                example={"x": np.zeros((1, 1))}, bench=BenchmarkSpec(), tasks=REG)
    base.update(kw)
    return Evidence(**base)


def run(metrics: dict, **kw):
    return {c.name: c for c in judge(Thresholds.model_validate({"metrics": metrics}), evidence(**kw))}


def test_mae_max_passes_a_loose_limit_and_fails_a_tight_one():
    loose = run({"mae": {"max": 100.0}})["metrics.mae.max"]
    assert loose.passed and loose.value == pytest.approx(ERR_CAND.mean()) and loose.unit == "value"
    tight = run({"mae": {"max": 30.0}})["metrics.mae.max"]
    assert not tight.passed and "metrics.mae.max FAILED: mae" in tight.message and "over the limit by" in tight.message
    assert tight.reference == pytest.approx(ERR_ORIG.mean())


def test_max_increase_is_relative_with_a_paired_interval():
    c = run({"mae": {"max_increase": "5%"}})["metrics.mae.max_increase"]
    assert c.passed and c.value == pytest.approx(0.02) and c.unit == "%"
    assert c.ci_low == pytest.approx(0.02) and c.ci_high == pytest.approx(0.02)   # every example moved by 2 %
    assert "paired bootstrap over 400 examples" in c.detail
    assert not run({"mae": {"max_increase": "1%"}})["metrics.mae.max_increase"].passed


def test_ci_mode_judges_the_far_end():
    noisy = ERR_ORIG * RNG.normal(1.0, 0.3, 400)
    cand = side([mv("mae", noisy.mean(), noisy)])
    probe = run({"mae": {"max_increase": 1.0}}, candidate=cand)["metrics.mae.max_increase"]
    middle = max(probe.value, 0.0) + (probe.ci_high - max(probe.value, 0.0)) / 2   # between the point and the far end
    point = run({"mae": {"max_increase": middle}}, candidate=cand)["metrics.mae.max_increase"]
    ci = run({"mae": {"max_increase": middle, "mode": "ci"}}, candidate=cand)["metrics.mae.max_increase"]
    assert point.outcome == "point" and point.passed
    assert ci.outcome == "ci" and not ci.passed and "upper end" in ci.detail


def test_rmse_change_resamples_squared_errors():
    cmp = metric_change(45.0, 46.0, higher_is_better=False, relative=True, before_examples=ERR_ORIG ** 2,
                        after_examples=ERR_CAND ** 2, root=True)
    assert cmp.paired and cmp.ci_low == pytest.approx(0.02, abs=1e-9)


def test_drop_of_an_accuracy_like_metric_is_in_points():
    correct_o, correct_c = np.ones(100), np.r_[np.ones(97), np.zeros(3)]
    tasks = {"out": OutputTask("out", "classifier", 10, "softmax")}
    ev = dict(original=side([mv("accuracy", 1.0, correct_o)]), candidate=side([mv("accuracy", 0.97, correct_c)]),
              tasks=tasks)
    c = run({"accuracy": {"max_drop": 0.05}}, **ev)["metrics.accuracy.max_drop"]
    assert c.passed and c.value == pytest.approx(0.03) and c.unit == "pts"


def test_fidelity_min_and_a_metric_without_value_is_not_judged():
    checks = run({"snr_db": {"min": 30.0}, "accuracy": {"min": 0.5}, "cosine": {"min": 0.99}})
    assert checks["metrics.snr_db.min"].passed and checks["metrics.snr_db.min"].unit == "dB"
    assert checks["metrics.snr_db.min"].reference == 200.0         # the float reference's fidelity
    assert checks["metrics.cosine.min"].passed
    acc = checks["metrics.accuracy.min"]
    assert acc.outcome == "not_judged" and not acc.passed and "no targets" in acc.detail
    lenient = judge(Thresholds.model_validate({"not_judged": "pass", "metrics": {"accuracy": {"min": 0.5}}}),
                    evidence())
    assert lenient[0].outcome == "not_judged" and lenient[0].passed


def test_several_outputs_qualified_names_and_ambiguity():
    tasks = {"digit": OutputTask("digit", "classifier", 10, "softmax"),
             "ink": OutputTask("ink", "regression", 1, "linear")}
    cand = side([mv("digit/accuracy", 0.9), mv("ink/mae", 0.1), mv("digit/snr_db", 30.0), mv("ink/snr_db", 40.0)])
    checks = run({"ink/mae": {"max": 0.2}, "digit/accuracy": {"min": 0.8}, "snr_db": {"min": 10}, "mae": {"max": 1}},
                 candidate=cand, tasks=tasks)
    assert checks["metrics.ink/mae.max"].passed and checks["metrics.digit/accuracy.min"].passed
    assert checks["metrics.mae.max"].passed                         # the only output mae applies to
    every = checks["metrics.snr_db.min"]                            # a fidelity metric: every output
    assert every.passed and every.outcome == "point" and every.value == 30.0
    assert every.metric == "snr_db on every output (worst: digit)" and "digit 30, ink 40" in every.detail
    one_fails = run({"snr_db": {"min": 35}}, candidate=cand, tasks=tasks)["metrics.snr_db.min"]
    assert not one_fails.passed and one_fails.value == 30.0 and "digit 30 (fails), ink 40" in one_fails.detail
    assert one_fails.message.startswith("metrics.snr_db.min FAILED: snr_db on every output (worst: digit) 30.00 dB")


def test_a_metric_that_needs_its_output_named_is_a_config_error_naming_the_field(tmp_path):
    from gate.config.load import load_config
    from gate.errors import ConfigError
    from gate.measure.qualify import check_metric_names, problem

    two = {"score": OutputTask("score", "regression", 1, "linear"), "cls": OutputTask("cls", "regression", 1, "linear")}
    assert problem("mae", two) == ("`mae` needs its output named: the model has 2 outputs (score (regression), "
                                   "cls (regression)) and mae fits 2 of them; write score/mae or cls/mae")
    assert problem("score/mae", two) is None and problem("snr_db", two) is None
    assert problem("nope/mae", two).startswith("the model has no output 'nope'")
    for name in ("m.keras", "train.npz", "eval.npz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "gate.yml").write_text("model: m.keras\ndata: {train: train.npz, eval: eval.npz}\npolicy: int8\n"
                                       "thresholds:\n  metrics:\n    snr_db: {min: 30}\n    mae: {max: 1}\n")
    with pytest.raises(ConfigError) as info:
        check_metric_names(load_config(tmp_path / "gate.yml"), two)
    assert (info.value.field, info.value.line, info.value.exit_code) == ("thresholds.metrics.mae", 7, 2)


def test_vs_base_rows_need_the_base():
    t = Thresholds.model_validate({"metrics": {"mae": {"max_increase_vs_base": "2%", "max": 99}}})
    assert configured(t, needs_base=True) == ["metrics.mae.max_increase_vs_base"]
    base = side([mv("mae", ERR_ORIG.mean(), ERR_ORIG)])
    c = {x.name: x for x in judge(t, evidence(base=base))}["metrics.mae.max_increase_vs_base"]
    assert c.value == pytest.approx(0.02) and c.passed
    missing = {x.name: x for x in judge(t, evidence(no_base=("not_applicable", "--no-baseline")))}
    assert missing["metrics.mae.max_increase_vs_base"].outcome == "not_applicable"


@pytest.mark.parametrize("metrics,text", [
    ({"mae": {"max_drop": 0.1}}, "max_drop does not apply, mae is better lower; use max_increase"),
    ({"accuracy": {"max_increase": 0.1}}, "max_increase does not apply"),
    ({"snr_db": {"max_drop": 3}}, "already measured against the original model"),
    ({"nope": {"max": 1}}, "unknown metric 'nope'"),
    ({"mae": {}}, "set at least one of"),
    ({"top_k": {"min": 0.5}}, "say which k"),
    ({"mae": {"max": 1}, "MAE": {"max": 2}}, "listed twice"),
])
def test_bad_metric_thresholds_are_refused(metrics, text):
    with pytest.raises(ValidationError, match=text):
        Thresholds.model_validate({"metrics": metrics})


def test_evaluate_metrics_names():
    assert EvaluateSpec.model_validate({"metrics": ["mae", {"top_k": 3}, "top5", "score/MAE"]}).metrics == \
        ["mae", "top_3", "top_5", "score/mae"]
    with pytest.raises(ValidationError, match="unknown metric"):
        EvaluateSpec.model_validate({"metrics": ["f1"]})


def test_a_relative_change_from_zero_is_not_judged():
    zero = side([mv("mae", 0.0, np.zeros(400))])
    c = run({"mae": {"max_increase": "5%"}}, original=zero)["metrics.mae.max_increase"]
    assert c.outcome == "not_judged" and "is 0: a relative increase is undefined" in c.detail
