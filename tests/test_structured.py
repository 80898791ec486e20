"""Dependency-aware structured pruning: residual adds, concatenations, squeeze-excite,
separable convs, nested models, stock keras.applications graphs.

The key correctness check: zero whole channels of a group by hand (every producer's filter
and bias, every BN's gamma/beta at the channel's positions, concat offsets included), prune
at the ratio that removes exactly those, and the smaller model must compute what the
original computes. For stock models the same is done from the result's own slices
(`silenced`), which checks that every layer touching a group was sliced consistently.
"""
from __future__ import annotations

import numpy as np
import pytest

from gate.optimize.structured import LayerShrink, structured_prune


@pytest.fixture(scope="module")
def k():
    from gate.measure.tfenv import keras

    return keras()


def _x(shape, n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _close(a, b, rel=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * max(1.0, float(np.abs(b).max())))


def _randomize_bns(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.3, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    return model


def _copy(k, model):
    ref = k.models.clone_model(model)
    ref.set_weights(model.get_weights())
    return ref


def _zero(layer, channels, bn_positions=None):
    """Zero output channels of a Conv/Dense (kernel column, bias) or silence BN positions."""
    if type(layer).__name__ == "BatchNormalization":
        for var in (layer.gamma, layer.beta):
            if var is not None:
                w = var.numpy()
                w[channels] = 0
                var.assign(w)
        return
    w = layer.get_weights()
    i = 1 if type(layer).__name__ == "SeparableConv2D" else 0
    w[i][..., channels] = 0
    if len(w) > i + 1:
        w[i + 1][channels] = 0
    layer.set_weights(w)


def _find(model, name):
    """A layer by name, looking inside nested models too."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers") and (found := _find(layer, name)) is not None:
            return found
    return None


def silenced(k, model, result):
    """The original with every removed channel zeroed, from the result's slices: computes what
    the pruned model computes iff every layer touching a group was sliced consistently."""
    ref = _copy(k, model)
    for name, (pin, pout) in result.slices.items():
        layer = _find(ref, name)
        cls = type(layer).__name__
        if cls == "BatchNormalization":
            _zero(layer, np.setdiff1d(np.arange(layer.gamma.shape[0]), pin))
        elif cls == "DepthwiseConv2D" and pout is not None:
            w = layer.get_weights()
            if len(w) > 1:
                w[1][np.setdiff1d(np.arange(w[1].shape[0]), pout)] = 0
                layer.set_weights(w)
        elif cls in ("Conv2D", "Dense", "SeparableConv2D") and pout is not None:
            _zero(layer, np.setdiff1d(np.arange(layer.get_weights()[-1].shape[0]), pout))
    return ref


# --------------------------------------------------------------------------- small graphs

def _residual(k):
    L = k.layers
    inp = k.Input((8, 8, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv0")(inp)
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    y = L.Conv2D(4, 3, padding="same", name="conv2")(y)
    z = L.Add(name="add_1")([x, y])
    return k.Model(inp, L.Dense(3, name="out")(L.Flatten()(z)))


def test_residual_add_shrinks_both_writers_of_the_stream_together(k):
    k.utils.set_random_seed(0)
    model = _residual(k)
    result = structured_prune(model, ratio=0.5)
    assert [(r.name, r.before, r.after) for r in result.shrunk] == [("conv0", 4, 2), ("conv1", 4, 2), ("conv2", 4, 2)]
    assert [g.members for g in result.groups] == [("conv0", "conv2"), ("conv1",), ("out",)]
    np.testing.assert_array_equal(result.slices["conv0"][1], result.slices["conv2"][1])
    assert result.model.get_layer("out").get_weights()[0].shape == (8 * 8 * 2, 3)
    x = _x((8, 8, 1))
    _close(result.model(x), silenced(k, model, result)(x))


def test_a_group_with_an_unselected_writer_stays(k):
    result = structured_prune(_residual(k), ratio=0.5, selected={"conv2"})
    assert result.shrunk == ()
    assert result.skipped == (("conv2", "shares channels with 'conv0', not selected"),)
    assert result.params_after == result.params_before


def test_residual_block_shrinks_inside_when_its_ends_are_excluded(k):
    result = structured_prune(_residual(k), ratio=0.5, selected={"conv1"})
    assert result.shrunk == (LayerShrink("conv1", "Conv2D", 4, 2, "l1"),)
    assert result.model.get_layer("conv2").get_weights()[0].shape == (3, 3, 2, 4)


def test_concatenate_removes_the_matching_output_slices(k):
    L = k.layers
    k.utils.set_random_seed(1)
    inp = k.Input((8, 8, 1))
    a = L.Conv2D(4, 3, name="conv_a")(inp)
    b = L.Conv2D(6, 3, name="conv_b")(inp)
    model = k.Model(inp, L.Dense(2, name="out")(L.Flatten()(L.Concatenate(name="cat")([a, b]))))
    result = structured_prune(model, ratio=0.5)
    assert [(r.name, r.after) for r in result.shrunk] == [("conv_a", 2), ("conv_b", 3)]
    ka, kb = result.slices["conv_a"][1], result.slices["conv_b"][1]
    rows = (np.arange(36)[:, None] * 10 + np.concatenate([ka, 4 + kb])[None, :]).ravel()
    np.testing.assert_array_equal(result.model.get_layer("out").get_weights()[0],
                                  model.get_layer("out").get_weights()[0][rows])
    x = _x((8, 8, 1))
    _close(result.model(x), silenced(k, model, result)(x))


def test_reshape_that_mixes_channels_keeps_the_group(k):
    L = k.layers
    model = k.Sequential([k.Input((4,)), L.Dense(8, name="d"), L.ReLU(name="r"), L.Reshape((2, 4), name="rs"),
                          L.Flatten(), L.Dense(2, name="out")])
    result = structured_prune(model, ratio=0.5)
    assert result.skipped == (("d", "group feeds a Reshape that mixes channels ('rs')"),
                              ("out", "output layer: its units are the model's outputs"))
    assert result.params_after == result.params_before


def test_nested_model_is_inlined_and_pruned(k):
    L = k.layers
    k.utils.set_random_seed(2)
    inner = k.Sequential([k.Input((8,)), L.Dense(4, activation="relu", name="inner_dense")], name="inner")
    inp = k.Input((4,))
    model = k.Model(inp, L.Dense(2, name="out")(inner(L.Dense(8, activation="relu", name="d1")(inp))))
    before = [w.copy() for w in model.get_weights()]
    result = structured_prune(model, ratio=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # original untouched
    assert [(r.name, r.after) for r in result.shrunk] == [("d1", 4), ("inner_dense", 2)]
    assert "inner" not in [layer.name for layer in result.model.layers]
    x = _x((4,))
    _close(result.model(x), silenced(k, model, result)(x))


def test_unsupported_consumer_and_model_input_keep_their_groups(k):
    L = k.layers
    inp = k.Input((8, 8, 3))
    a = L.Conv2D(3, 3, padding="same", name="into_input")(inp)
    x = L.Add(name="add")([inp, a])
    b = L.Conv2D(4, 3, name="into_lambda")(x)
    y = L.Lambda(lambda t: t * 2.0, name="lam")(b)
    c = L.Conv2D(5, 3, name="free")(y)
    model = k.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(c)))
    result = structured_prune(model, ratio=0.5)
    assert dict(result.skipped) == {
        "into_input": "group holds the model input's channels",
        "into_lambda": "unsupported layer class Lambda ('lam') consumes this group",
        "out": "output layer: its units are the model's outputs"}
    assert [(r.name, r.after) for r in result.shrunk] == [("free", 2)]


def test_output_defined_through_weight_free_layers_is_kept(k):
    # MobileNet's head: conv_preds 1x1 -> Reshape -> softmax Activation
    L = k.layers
    inp = k.Input((8, 8, 3))
    x = L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(8, 3, name="c")(inp))
    x = L.Conv2D(10, 1, name="conv_preds")(L.Dropout(0.1)(x))
    model = k.Model(inp, L.Activation("softmax", name="predictions")(L.Reshape((10,), name="reshape_2")(x)))
    result = structured_prune(model, ratio=0.5)
    why = "defines the model output 'predictions': its units are the output's channels"
    assert result.skipped == (("conv_preds", why),)
    assert result.model.output_shape == (None, 10)


def test_add_of_different_layouts_is_refused_with_a_reason(k):
    L = k.layers
    inp = k.Input((8, 8, 3))
    cat = L.Concatenate(name="cat")([L.Conv2D(2, 1, name="a")(inp), L.Conv2D(2, 1, name="b")(inp)])
    x = L.Add(name="add")([cat, L.Conv2D(4, 1, name="c")(inp)])
    model = k.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(x)))
    result = structured_prune(model, ratio=0.5)
    assert dict(result.skipped)["c"] == "'add' (Add) joins channels of different layouts"
    assert result.shrunk == ()


def test_grouped_conv_and_shared_layers_keep_their_groups(k):
    L = k.layers
    inp = k.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="before_grouped")(inp)
    x = L.Conv2D(4, 3, groups=2, name="grouped")(x)
    shared = L.Dense(6, name="shared")
    a = L.Dense(5, name="free")(shared(L.GlobalAveragePooling2D()(x)))
    b = shared(L.Dense(4, name="into_shared")(L.GlobalAveragePooling2D()(inp)))
    model = k.Model(inp, L.Dense(2, name="out")(L.Concatenate()([a, b])))
    result = structured_prune(model, ratio=0.5)
    assert dict(result.skipped) == {
        "before_grouped": "group feeds 'grouped' (Conv2D): grouped convolution (groups=2)",
        "grouped": "grouped convolution (groups=2)",
        "shared": "shared layer: called 2 times in the model",
        "into_shared": "group feeds 'shared' (Dense): shared layer: called 2 times in the model",
        "out": "output layer: its units are the model's outputs"}
    assert [(r.name, r.after) for r in result.shrunk] == [("free", 2)]


def test_layer_norm_over_channels_is_sliced(k):
    L = k.layers
    model = k.Sequential([k.Input((6,)), L.Dense(8, name="d"), L.LayerNormalization(name="ln"),
                          L.Dense(3, name="out")])
    result = structured_prune(model, ratio=0.5)
    assert [w.shape for w in result.model.get_layer("ln").get_weights()] == [(4,), (4,)]
    np.testing.assert_array_equal(result.model.get_layer("ln").get_weights()[0],
                                  model.get_layer("ln").get_weights()[0][result.slices["d"][1]])


# --------------------------------------------------------------------------- hand-zeroed equivalence

def test_default_named_conv_bn_relu_cnn(k):
    L = k.layers
    k.utils.set_random_seed(3)
    model = k.Sequential([k.Input((16, 16, 3)), L.Conv2D(16, 3), L.BatchNormalization(), L.ReLU(),
                          L.MaxPooling2D(), L.Conv2D(32, 3), L.BatchNormalization(), L.ReLU(),
                          L.GlobalAveragePooling2D(), L.Dense(10)])
    _randomize_bns(model)
    conv1, bn1, conv2, bn2 = (model.layers[i] for i in (0, 1, 4, 5))
    gone1, gone2 = np.arange(0, 16, 2), np.arange(1, 32, 2)
    ref = _copy(k, model)
    for name, gone in ((conv1.name, gone1), (bn1.name, gone1), (conv2.name, gone2), (bn2.name, gone2)):
        _zero(model.get_layer(name), gone)
    result = structured_prune(model, ratio=0.5)
    assert [(r.cls, r.before, r.after) for r in result.shrunk] == [("Conv2D", 16, 8), ("Conv2D", 32, 16)]
    np.testing.assert_array_equal(result.slices[conv1.name][1], np.arange(1, 16, 2))
    np.testing.assert_array_equal(result.slices[conv2.name][1], np.arange(0, 32, 2))
    x = _x((16, 16, 3))
    _close(result.model(x), model(x))
    assert not np.allclose(result.model(x), ref(x), atol=1e-3)   # removing real filters changes outputs


def resnet_blocks(k):
    L = k.layers
    inp = k.Input((16, 16, 3))
    x = L.ReLU(name="r0")(L.BatchNormalization(name="b0")(L.Conv2D(8, 3, padding="same", name="c0")(inp)))
    y = L.ReLU(name="r1")(L.BatchNormalization(name="b1")(L.Conv2D(8, 3, padding="same", name="c1")(x)))
    y = L.BatchNormalization(name="b2")(L.Conv2D(8, 3, padding="same", name="c2")(y))
    x = L.ReLU(name="r_add1")(L.Add(name="add1")([x, y]))
    s = L.BatchNormalization(name="bsc")(L.Conv2D(16, 1, strides=2, name="sc")(x))
    y = L.ReLU(name="r3")(L.BatchNormalization(name="b3")(L.Conv2D(16, 3, strides=2, padding="same", name="c3")(x)))
    y = L.BatchNormalization(name="b4")(L.Conv2D(16, 3, padding="same", name="c4")(y))
    x = L.ReLU(name="r_add2")(L.Add(name="add2")([s, y]))
    return k.Model(inp, L.Dense(10, name="out")(L.GlobalAveragePooling2D(name="gap")(x)), name="resnet_blocks")


def test_resnet_blocks_with_hand_zeroed_groups(k):
    k.utils.set_random_seed(4)
    model = _randomize_bns(resnet_blocks(k))
    ref = _copy(k, model)
    zero = {("c0", "b0", "c2", "b2"): [0, 3, 5, 6], ("c1", "b1"): [1, 2, 4, 7],
            ("sc", "bsc", "c4", "b4"): list(range(8, 16)), ("c3", "b3"): list(range(0, 16, 2))}
    for names, gone in zero.items():
        for name in names:
            _zero(model.get_layer(name), gone)
    result = structured_prune(model, ratio=0.5)
    assert sorted(g.members for g in result.groups) == sorted([("c0", "c2"), ("c1",), ("sc", "c4"), ("c3",), ("out",)])
    for names, gone in zero.items():
        kept = np.setdiff1d(np.arange(model.get_layer(names[0]).filters), gone)
        for name in names:
            np.testing.assert_array_equal(result.slices[name][1], kept)
    new = result.model
    assert new.get_layer("c2").get_weights()[0].shape == (3, 3, 4, 4)
    assert new.get_layer("sc").get_weights()[0].shape == (1, 1, 4, 8)
    assert new.get_layer("out").get_weights()[0].shape == (8, 10)
    x = _x((16, 16, 3))
    _close(new(x), model(x))
    assert not np.allclose(structured_prune(ref, ratio=0.5).model(x), ref(x), atol=1e-3)


def densenet_blocks(k):
    L = k.layers
    inp = k.Input((16, 16, 3))
    x = L.ReLU()(L.BatchNormalization(name="b0")(L.Conv2D(8, 3, padding="same", name="c0")(inp)))
    y = L.Conv2D(4, 3, padding="same", name="c1")(L.ReLU()(L.BatchNormalization(name="b1")(x)))
    x1 = L.Concatenate(name="cat1")([x, y])
    y = L.Conv2D(4, 3, padding="same", name="c2")(L.ReLU()(L.BatchNormalization(name="b2")(x1)))
    x2 = L.Concatenate(name="cat2")([x1, y])
    t = L.Conv2D(8, 1, name="ct")(L.ReLU()(L.BatchNormalization(name="bt")(x2)))
    t = L.AveragePooling2D(2, name="pool")(t)
    return k.Model(inp, L.Dense(10, name="out")(L.GlobalAveragePooling2D()(t)), name="densenet_blocks")


def test_densenet_blocks_with_hand_zeroed_groups_and_concat_offsets(k):
    k.utils.set_random_seed(5)
    model = _randomize_bns(densenet_blocks(k))
    a, b, c, d = np.array([1, 2, 5, 6]), np.array([0, 3]), np.array([1, 2]), np.array([0, 2, 4, 6])
    # c0's channels are positions 0-7 of x, x1 and x2; c1's are 8-11 of x1, x2; c2's are 12-15 of x2
    for name, gone in (("c0", a), ("b0", a), ("b1", a), ("b2", a), ("bt", a), ("c1", b), ("b2", 8 + b),
                       ("bt", 8 + b), ("c2", c), ("bt", 12 + c), ("ct", d)):
        _zero(model.get_layer(name), gone)
    result = structured_prune(model, ratio=0.5)
    assert [(r.name, r.before, r.after) for r in result.shrunk] == [("c0", 8, 4), ("c1", 4, 2), ("c2", 4, 2),
                                                                    ("ct", 8, 4)]
    keep = lambda n, gone: np.setdiff1d(np.arange(n), gone)
    np.testing.assert_array_equal(result.slices["bt"][0], np.concatenate([keep(8, a), 8 + keep(4, b),
                                                                          12 + keep(4, c)]))
    assert result.model.get_layer("c2").get_weights()[0].shape == (3, 3, 6, 2)
    assert result.model.get_layer("ct").get_weights()[0].shape == (1, 1, 8, 4)
    x = _x((16, 16, 3))
    _close(result.model(x), model(x))


def test_squeeze_excite_multiply_couples_the_gate_with_its_input(k):
    L = k.layers
    k.utils.set_random_seed(6)
    inp = k.Input((8, 8, 3))
    x = L.ReLU()(L.Conv2D(8, 3, padding="same", name="c0")(inp))
    s = L.Reshape((1, 1, 8), name="rs")(L.GlobalAveragePooling2D(name="gap")(x))
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_e")(L.Conv2D(2, 1, activation="relu", name="se_r")(s))
    x = L.Multiply(name="mul")([x, s])
    model = k.Model(inp, L.Dense(3, name="out")(L.GlobalAveragePooling2D()(L.Conv2D(4, 3, name="c1")(x))))
    for name, gone in (("c0", [0, 1, 4, 5]), ("se_e", [0, 1, 4, 5]), ("se_r", [1]), ("c1", [1, 3])):
        _zero(model.get_layer(name), gone)
    result = structured_prune(model, ratio=0.5)
    assert [g.members for g in result.groups][:2] == [("c0", "se_e"), ("se_r",)]
    assert result.model.get_layer("rs").target_shape == (1, 1, 4)
    x = _x((8, 8, 3))
    _close(result.model(x), model(x))


def test_separable_conv_is_a_producer_and_a_consumer(k):
    L = k.layers
    k.utils.set_random_seed(7)
    model = _randomize_bns(k.Sequential([
        k.Input((8, 8, 3)), L.SeparableConv2D(8, 3, depth_multiplier=2, padding="same", name="s0"),
        L.BatchNormalization(name="bn"), L.ReLU(), L.SeparableConv2D(6, 3, depth_multiplier=2, name="s1"),
        L.GlobalAveragePooling2D(), L.Dense(3, name="out")]))
    result = structured_prune(model, ratio=0.5)
    dw, pw, bias = result.model.get_layer("s1").get_weights()
    assert dw.shape == (3, 3, 4, 2) and pw.shape == (1, 1, 8, 3) and bias.shape == (3,)
    x = _x((8, 8, 3))
    _close(result.model(x), silenced(k, model, result)(x))


# --------------------------------------------------------------------------- stock applications

def _stock(k, name):
    A, shape = k.applications, (32, 32, 3)
    build = {
        "MobileNetV2": lambda: A.MobileNetV2(alpha=0.35, input_shape=shape, weights=None, classes=10,
                                             classifier_activation=None),
        "MobileNet": lambda: A.MobileNet(alpha=0.25, input_shape=shape, weights=None, classes=10,
                                         classifier_activation=None),
        "ResNet50": lambda: A.ResNet50(input_shape=shape, weights=None, classes=10, classifier_activation=None),
        "DenseNet121": lambda: A.DenseNet121(input_shape=shape, weights=None, classes=10, classifier_activation=None),
        "EfficientNetB0": lambda: A.EfficientNetB0(input_shape=shape, weights=None, classes=10,
                                                   classifier_activation=None),
    }[name]
    k.utils.set_random_seed(0)
    return _randomize_bns(build())


STOCK = ["MobileNetV2", "ResNet50"]   # the prototype's run covered MobileNet, DenseNet121, EfficientNetB0 too


@pytest.mark.slow
@pytest.mark.parametrize("name", STOCK)
def test_stock_application_prunes_consistently(k, name):
    model = _stock(k, name)
    result = structured_prune(model, ratio=0.5)
    assert result.params_after < 0.6 * result.params_before
    assert result.model.output_shape == model.output_shape
    assert any(r.startswith(("output layer", "defines the model output")) for _, r in result.skipped)
    x = _x((32, 32, 3), n=4)
    _close(result.model(x, training=False), silenced(k, model, result)(x, training=False))
