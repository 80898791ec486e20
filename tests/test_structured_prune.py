"""Structured pruning: whole units/filters removed, a genuinely smaller model rebuilt.

Equivalence is checked against a reference: the original model with the removed units
silenced (kernel column and bias zeroed before a ReLU; gamma and beta zeroed where a
BatchNormalization follows), which computes exactly what the smaller model computes.
"""
from __future__ import annotations

import numpy as np
import pytest

from gate.errors import PolicyError
from gate.optimize.structured import LayerShrink, structured_prune, unit_norms

# Conv2D(8)->BN->ReLU->MaxPool->Conv2D(16)->Flatten->Dense(32)->Dropout->Dense(10) at 8x8x1
PARAMS_FULL = (3 * 3 * 1 * 8 + 8) + 4 * 8 + (3 * 3 * 8 * 16 + 16) + (4 * 4 * 16 * 32 + 32) + (32 * 10 + 10)
PARAMS_HALF = (3 * 3 * 1 * 4 + 4) + 4 * 4 + (3 * 3 * 4 * 8 + 8) + (4 * 4 * 8 * 16 + 16) + (16 * 10 + 10)


@pytest.fixture(scope="module")
def k():
    from gate.measure.tfenv import keras

    return keras()


def _chain(k):
    L = k.layers
    return [L.Conv2D(8, 3, padding="same", name="conv1"), L.BatchNormalization(name="bn1"),
            L.ReLU(name="relu1"), L.MaxPooling2D(2, name="pool1"),
            L.Conv2D(16, 3, padding="same", activation="relu", name="conv2"), L.Flatten(name="flatten"),
            L.Dense(32, activation="relu", name="fc"), L.Dropout(0.5, name="drop"), L.Dense(10, name="out")]


def _randomize_bn(model, seed=1):
    rng = np.random.default_rng(seed)
    bn = model.get_layer("bn1")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def sequential_model(k):
    k.utils.set_random_seed(0)
    return _randomize_bn(k.Sequential([k.Input((8, 8, 1), name="image"), *_chain(k)], name="seq"))


def functional_model(k):
    k.utils.set_random_seed(0)
    x = inp = k.Input((8, 8, 1), name="image")
    for layer in _chain(k):
        x = layer(x)
    return _randomize_bn(k.Model(inp, x, name="func"))


BUILDERS = {"sequential": sequential_model, "functional": functional_model}


def _x(shape=(8, 8, 1), n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _snapshot(model):
    return {w.name: w.numpy().copy() for w in model.weights}


def _top(kernel, n_keep, norm="l1"):
    """Independent restatement of the ranking: highest norms, original order."""
    flat = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    scores = flat.sum(0) if norm == "l1" else np.sqrt((flat ** 2).sum(0))
    return np.sort(np.argsort(-scores, kind="stable")[:n_keep])


def _expected_keeps(model):
    """Kept units of conv1, conv2, fc at ratio 0.5, ranking on the rows that survive."""
    k1 = _top(model.get_layer("conv1").get_weights()[0], 4)
    k2 = _top(model.get_layer("conv2").get_weights()[0][:, :, k1, :], 8)
    rows = (np.arange(4 * 4)[:, None] * 16 + k2[None, :]).ravel()   # Flatten of (4, 4, 16)
    k3 = _top(model.get_layer("fc").get_weights()[0][rows, :], 16)
    return {"conv1": k1, "conv2": k2, "fc": k3}


def _silenced_copy(k, model, keeps):
    """The original with removed units zeroed: its outputs equal the pruned model's."""
    ref = k.models.clone_model(model)
    ref.set_weights(model.get_weights())
    for name, kept in keeps.items():
        removed = np.setdiff1d(np.arange(ref.get_layer(name).get_weights()[0].shape[-1]), kept)
        if name == "conv1":      # BN follows: silence the BN output instead
            bn = ref.get_layer("bn1")
            gamma, beta, mean, var = bn.get_weights()
            gamma[removed] = 0
            beta[removed] = 0
            bn.set_weights([gamma, beta, mean, var])
        else:                    # ReLU follows: zero kernel column and bias
            kernel, bias = ref.get_layer(name).get_weights()
            kernel[..., removed] = 0
            bias[removed] = 0
            ref.get_layer(name).set_weights([kernel, bias])
    return ref


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_half_ratio_halves_selected_layers_and_matches_silenced_original(k, kind):
    model = BUILDERS[kind](k)
    before = _snapshot(model)
    x = _x()
    result = structured_prune(model, ratio=0.5)
    new = result.model

    assert result.shrunk == (LayerShrink("conv1", "Conv2D", 8, 4, "l1"), LayerShrink("conv2", "Conv2D", 16, 8, "l1"),
                             LayerShrink("fc", "Dense", 32, 16, "l1"))
    assert [name for name, _ in result.skipped] == ["out"]
    assert (result.params_before, result.params_after) == (PARAMS_FULL, PARAMS_HALF) == (9834, 2586)
    assert new.count_params() == PARAMS_HALF and model.count_params() == PARAMS_FULL
    assert type(new) is type(model) and new is not model
    assert new.get_layer("conv1").filters == 4 and new.get_layer("conv2").get_weights()[0].shape == (3, 3, 4, 8)
    assert [w.shape for w in new.get_layer("bn1").get_weights()] == [(4,)] * 4
    assert new.get_layer("fc").get_weights()[0].shape == (4 * 4 * 8, 16)
    assert new.get_layer("out").units == 10 and new.get_layer("out").get_weights()[0].shape == (16, 10)
    assert new.output_shape == model.output_shape == (None, 10)

    keeps = _expected_keeps(model)
    for name, kept in keeps.items():   # the kept columns are the original ones, in order
        np.testing.assert_array_equal(new.get_layer(name).get_weights()[1], model.get_layer(name).get_weights()[1][kept])
    ref = _silenced_copy(k, model, keeps)
    np.testing.assert_allclose(new(x, training=False).numpy(), ref(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(new(x).numpy(), model(x).numpy(), atol=1e-3)   # removing units did change something

    after = _snapshot(model)
    assert before.keys() == after.keys()
    assert all(before[n].tobytes() == after[n].tobytes() for n in before), "the original's weights changed"


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_ratio_zero_is_the_identity(k, kind):
    model = BUILDERS[kind](k)
    x = _x()
    result = structured_prune(model, ratio=0.0)
    assert all(row.before == row.after for row in result.shrunk) and len(result.shrunk) == 3
    assert result.params_after == result.params_before == PARAMS_FULL
    np.testing.assert_allclose(result.model(x).numpy(), model(x).numpy(), rtol=0, atol=1e-6)


def test_empty_selection_changes_nothing(k):
    model = sequential_model(k)
    before = _snapshot(model)
    result = structured_prune(model, ratio=0.5, selected=set())
    assert result.shrunk == () and result.skipped == ()
    assert result.params_after == result.params_before
    for a, b in zip(result.model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(before[w.name].tobytes() == w.numpy().tobytes() for w in model.weights)


def test_only_selected_layers_shrink_and_others_pass_channels_through(k):
    model = sequential_model(k)
    result = structured_prune(model, ratio=0.5, selected={"conv2", "bn1", "out", "missing"})
    assert result.shrunk == (LayerShrink("conv2", "Conv2D", 16, 8, "l1"),)
    assert dict(result.skipped).keys() == {"out", "missing"}   # bn1 just follows conv1: not listed
    assert "output layer" in dict(result.skipped)["out"]
    new = result.model
    assert new.get_layer("conv1").filters == 8 and new.get_layer("fc").units == 32
    assert new.get_layer("fc").get_weights()[0].shape == (4 * 4 * 8, 32)


def test_dense_followed_by_softmax_activation_is_still_the_output(k):
    L = k.layers
    model = k.Sequential([k.Input((6,)), L.Dense(8, name="hidden"), L.Dense(3, name="logits"),
                          L.Activation("softmax", name="probs")])
    result = structured_prune(model, ratio=0.5)
    assert [r.name for r in result.shrunk] == ["hidden"]
    assert result.skipped == (("logits", "defines the model output 'probs': its units are the output's channels"),)
    assert result.model.output_shape == (None, 3)


def test_l1_and_l2_keep_different_units(k):
    # unit 0: [1, 1, 1, 1] -> L1 4, L2 2;  unit 1: [3, 0, 0, 0] -> L1 3, L2 3
    kernel = np.array([[1, 3], [1, 0], [1, 0], [1, 0]], np.float32)
    assert unit_norms(kernel, "l1").argmax() == 0 and unit_norms(kernel, "l2").argmax() == 1
    L = k.layers
    model = k.Sequential([k.Input((4,)), L.Dense(2, activation="relu", name="hidden"), L.Dense(1, name="out")])
    model.get_layer("hidden").set_weights([kernel, np.array([0.1, 0.2], np.float32)])
    for norm, unit in (("l1", 0), ("l2", 1)):
        new = structured_prune(model, ratio=0.5, norm=norm).model
        w, b = new.get_layer("hidden").get_weights()
        np.testing.assert_array_equal(w[:, 0], kernel[:, unit])
        assert b[0] == np.float32([0.1, 0.2][unit])
        np.testing.assert_array_equal(new.get_layer("out").get_weights()[0][:, 0],
                                      model.get_layer("out").get_weights()[0][unit])


def test_min_units_and_rounding(k):
    L = k.layers
    model = k.Sequential([k.Input((4,)), L.Dense(10, name="a"), L.Dense(3, name="b"), L.Dense(2, name="out")])
    result = structured_prune(model, ratio=0.9, min_units=2)
    assert [(r.name, r.before, r.after) for r in result.shrunk] == [("a", 10, 2), ("b", 3, 2)]


def test_depthwise_conv_passes_channels_through(k):
    L = k.layers
    k.utils.set_random_seed(3)
    model = k.Sequential([
        k.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu", name="conv1"),
        L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu", name="dw"),
        L.Conv2D(6, 1, name="pw"), L.GlobalAveragePooling2D(name="gap"), L.Dense(3, name="out")])
    result = structured_prune(model, ratio=0.5)
    new = result.model
    assert [(r.name, r.after) for r in result.shrunk] == [("conv1", 4), ("pw", 3)]
    kernel, bias = new.get_layer("dw").get_weights()
    assert kernel.shape == (3, 3, 4, 2) and bias.shape == (8,)
    assert new.get_layer("pw").get_weights()[0].shape == (1, 1, 8, 3)

    # Reference: silence removed conv1 filters (and the depthwise bias of their channels),
    # and removed pw filters.
    k1 = _top(model.get_layer("conv1").get_weights()[0], 4)
    gone1 = np.setdiff1d(np.arange(8), k1)
    dw_rows = (k1[:, None] * 2 + np.arange(2)).ravel()
    k2 = _top(model.get_layer("pw").get_weights()[0][:, :, dw_rows, :], 3)
    ref = k.models.clone_model(model)
    ref.set_weights(model.get_weights())
    w, b = ref.get_layer("conv1").get_weights()
    w[..., gone1], b[gone1] = 0, 0
    ref.get_layer("conv1").set_weights([w, b])
    w, b = ref.get_layer("dw").get_weights()
    b[(gone1[:, None] * 2 + np.arange(2)).ravel()] = 0
    ref.get_layer("dw").set_weights([w, b])
    w, b = ref.get_layer("pw").get_weights()
    gone2 = np.setdiff1d(np.arange(6), k2)
    w[..., gone2], b[gone2] = 0, 0
    ref.get_layer("pw").set_weights([w, b])
    x = _x()
    np.testing.assert_allclose(new(x).numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


# (tests of residual/concat/reshape/nested refusals: see test_structured.py, behaviour changed)


def test_subclassed_model_is_refused(k):
    class Net(k.Model):
        def __init__(self):
            super().__init__()
            self.d = k.layers.Dense(4)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(PolicyError, match="structured_prune needs a Sequential or functional model"):
        structured_prune(net, ratio=0.5)


@pytest.mark.parametrize("kwargs,match", [({"ratio": 1.0}, "ratio must be in"), ({"ratio": -0.1}, "ratio must be in"),
                                          ({"ratio": 0.5, "norm": "l3"}, "norm must be one of"),
                                          ({"ratio": 0.5, "min_units": 0}, "min_units")])
def test_bad_arguments(k, kwargs, match):
    model = k.Sequential([k.Input((4,)), k.layers.Dense(4), k.layers.Dense(2)])
    with pytest.raises(PolicyError, match=match):
        structured_prune(model, **kwargs)
