"""`per_layer` tables of prune, cluster and structured_prune steps (what `gate tune`
writes): each listed layer gets its own strength; a name that is not a layer, or that the
step leaves alone, is refused naming the field. And the per-layer sensitivity kernels."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from gate.config.schema import Policy
from gate.errors import PolicyError
from gate.measure.data import Split
from gate.optimize import apply_steps
from gate.optimize.context import StepContext
from gate.optimize.finetune import CompileInfo
from gate.optimize.sensitivity import cluster_kernel, prune_kernel, unit_mask

ONE = {"epochs": 1}


def run(tiny, model, step):
    steps = Policy.model_validate({"steps": [step]}).steps
    split = Split("train", tiny.train, {"x": tiny.x_train, "y": tiny.y_train}, "", {"image": tiny.x_train},
                  {"classifier": tiny.y_train})
    ctx = StepContext(split, CompileInfo.of(model), x=tiny.x_train, y=tiny.y_train)
    return apply_steps(model, steps, ctx, lambda m, c: {})


@pytest.fixture()
def model(tiny_model):
    return tiny_model.keras


def test_prune_per_layer_sparsities(tiny, model):
    _, stages = run(tiny, model, {"prune": {"schedule": "constant", "target_sparsity": 0.5,
                                            "per_layer": {"conv": 0.25, "classifier": 0.8}, "finetune": ONE}})
    layers = stages[-1].layers
    assert layers["conv"].sparsity == pytest.approx(0.25, abs=0.02)
    assert layers["classifier"].sparsity == pytest.approx(0.8, abs=0.02)
    assert stages[-1].selection["per_layer"] == {"conv": 0.25, "classifier": 0.8}


def test_prune_per_layer_zero_leaves_the_layer_dense(tiny, model):
    _, stages = run(tiny, model, {"prune": {"final_sparsity": 0.6, "per_layer": {"conv": 0.0}, "finetune": ONE}})
    assert stages[-1].layers["conv"].sparsity == 0.0
    assert stages[-1].layers["classifier"].sparsity == pytest.approx(0.6, abs=0.02)
    assert {"layer": "conv", "reason": "per_layer sparsity 0"} in stages[-1].selection["skipped"]


def test_cluster_per_layer_counts(tiny, model):
    _, stages = run(tiny, model, {"cluster": {"clusters": 16, "per_layer": {"conv": 4}, "finetune": ONE}})
    assert stages[-1].layers["conv"].unique <= 4
    assert 4 < stages[-1].layers["classifier"].unique <= 16


def test_structured_per_layer_ratio(tiny, model):
    out, _ = run(tiny, model, {"structured_prune": {"ratio": 0.5, "per_layer": {"conv": 0.25}, "finetune": ONE}})
    assert out.get_layer("conv").filters == 6          # 8 filters, a quarter removed (not half)


@pytest.mark.parametrize("step,field", [
    ({"prune": {"final_sparsity": 0.5, "per_layer": {"convv": 0.5}, "finetune": ONE}}, "steps.prune.per_layer.convv"),
    ({"prune": {"final_sparsity": 0.5, "per_layer": {"classifier": 0.5}, "layers": {"exclude_roles": ["output"]},
                "finetune": ONE}}, "steps.prune.per_layer.classifier"),
    ({"cluster": {"clusters": 8, "per_layer": {"flatten": 4}, "finetune": ONE}}, "steps.cluster.per_layer.flatten"),
    ({"structured_prune": {"ratio": 0.5, "per_layer": {"nope": 0.5}, "finetune": ONE}},
     "steps.structured_prune.per_layer.nope"),
])
def test_per_layer_names_must_be_layers_the_step_changes(tiny, model, step, field):
    with pytest.raises(PolicyError) as err:
        run(tiny, model, step)
    assert err.value.field == field and err.value.exit_code == 2
    assert "per_layer names" in err.value.message


def test_per_layer_schema_refusals():
    with pytest.raises(ValidationError, match="per_layer sets a sparsity per layer"):
        Policy.model_validate({"steps": [{"prune": {"sparsity_m_by_n": [2, 4], "per_layer": {"a": 0.5}}}]})
    with pytest.raises(ValidationError):
        Policy.model_validate({"steps": [{"cluster": {"clusters": 8, "per_layer": {"a": 1}}}]})
    with pytest.raises(ValidationError):
        Policy.model_validate({"steps": [{"structured_prune": {"ratio": 0.5, "per_layer": {"a": 1.0}}}]})


def test_sensitivity_kernels():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 16)).astype(np.float32)
    assert np.mean(prune_kernel(w, 0.75) == 0) == pytest.approx(0.75, abs=0.01)
    c = cluster_kernel(w, 8)
    assert len(np.unique(c)) <= 8 and np.abs(c - w).mean() < np.abs(w).mean() / 3
    keep = unit_mask(w, 0.25)
    assert keep.sum() == 12
    norms = np.abs(w).reshape(-1, 16).sum(0)
    assert norms[~keep].max() <= norms[keep].min()
