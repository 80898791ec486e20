"""Graph roles: the output layer is found by the graph, not by name or position (behind
Reshape/Flatten/Activation/BN, in nested models, several outputs), the first layer behind
preprocessing, embeddings; and layer selection by role."""
from __future__ import annotations

import pytest

from gate.config.steps import LayerSelect
from gate.optimize.roles import input_layers, layer_roles, output_layers, output_roles
from gate.optimize.select import select_layers


@pytest.fixture(scope="module")
def k():
    from gate.measure.tfenv import keras

    return keras()


def _trunk(k):
    i = k.Input((8, 8, 3))
    return i, k.layers.GlobalAveragePooling2D()(k.layers.Conv2D(4, 3, name="conv")(i))


def test_mobilenet_style_head_behind_reshape_and_activation(k):
    """MobileNetV1: conv_preds (1x1) -> Reshape -> Activation('softmax') named predictions."""
    L = k.layers
    i = k.Input((8, 8, 3))
    x = L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(4, 3, name="conv")(i))
    x = L.Conv2D(10, 1, name="conv_preds")(L.Dropout(0.1)(x))
    m = k.Model(i, L.Activation("softmax", name="predictions")(L.Reshape((10,), name="reshape_2")(x)))
    assert output_roles(m) == {"conv_preds": ["predictions", "reshape_2"]}
    assert m.layers[-1].name == "predictions"    # what "the last layer" would have picked


def test_two_outputs_averaged_heads_and_a_bn_after_the_head(k):
    L = k.layers
    i, x = _trunk(k)
    two = k.Model(i, [L.Softmax()(L.Dense(10, name="cls")(x)), L.Activation("sigmoid")(L.Dense(4, name="box")(x))])
    assert output_layers(two) == {"cls", "box"}
    avg = k.Model(i, L.Average()([L.Dense(10, name="h1")(x), L.Dense(10, name="h2")(x)]))
    assert output_layers(avg) == {"h1", "h2"}
    bn = k.Model(i, L.Softmax()(L.BatchNormalization(name="head_bn")(L.Dense(10, name="head_dense")(x))))
    assert output_layers(bn) == {"head_dense"}    # BN has no kernel: the Dense is the head


def test_shared_head_and_head_inside_a_nested_model(k):
    L = k.layers
    i, x = _trunk(k)
    shared = L.Dense(10, name="shared_dense")
    tw = k.Model(i, [shared(x), L.ReLU()(shared(L.Dense(4, name="pre")(x)))])
    assert output_layers(tw) == {"shared_dense"}
    inner = k.Sequential([k.Input((8, 8, 3)), L.Conv2D(4, 3, name="inner_conv"), L.Flatten(),
                          L.Dense(10, name="inner_dense")], name="inner")
    wrap = k.Model(i, L.Softmax()(inner(i)))
    assert output_layers(wrap) == {"inner/inner_dense"}
    assert input_layers(wrap) == {"inner/inner_conv"}


def test_first_layer_behind_preprocessing_and_embeddings(k):
    L = k.layers
    i = k.Input((8, 8, 3))
    pre = k.Model(i, L.Dense(3, name="d")(L.Flatten()(L.Normalization(name="norm")(L.Rescaling(1 / 255.)(i)))))
    assert input_layers(pre) == {"d"} and output_layers(pre) == {"d"}
    t = k.Input((5,), dtype="int32")
    emb = k.Model(t, L.Dense(2, name="out")(L.Flatten()(L.Embedding(50, 8, name="emb")(t))))
    assert layer_roles(emb) == {"emb": {"input", "embedding"}, "out": {"output"}}


def test_selection_by_role_on_a_default_named_model(k):
    L = k.layers
    m = k.Sequential([k.Input((8, 8, 3)), L.Conv2D(4, 3), L.BatchNormalization(), L.ReLU(),
                      L.Flatten(), L.Dense(16), L.Dense(10, activation="softmax")])
    roles = layer_roles(m)
    head, stem = m.layers[-1].name, m.layers[0].name
    sel = select_layers(m.layers, LayerSelect(exclude_roles=["output"]), lambda _layer: None, roles)
    assert head not in sel.chosen and (head, "excluded by the policy (role: output, the model's output layer)") \
        in sel.skipped
    only = select_layers(m.layers, LayerSelect(include_roles=["input"]), lambda _layer: None, roles)
    assert only.chosen == (stem,)
    # the old name regex does not see a default-named head
    by_name = select_layers(m.layers, LayerSelect(exclude_regex="(logits|head|classifier)$"), lambda _layer: None)
    assert head in by_name.chosen
