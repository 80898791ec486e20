"""TFOpLambda layers that call pure TensorFlow arithmetic are data, not code: stock
MobileNetV3Small (hard-swish as `x + 3`, `* 1/6`) loads through the gate without trust;
any other TensorFlow function, or an operand that is not a tensor or a number, stays
refused."""
from __future__ import annotations

import json
import zipfile

import pytest

from gate.errors import ModelError
from gate.scan import scan_model
from gate.scan.allowlist import PURE_TF_FUNCTIONS


@pytest.fixture(scope="module")
def mnv3(tmp_path_factory):
    from gate.measure.tfenv import keras

    k = keras()
    model = k.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=10)
    path = tmp_path_factory.mktemp("mnv3") / "model.keras"
    model.save(path)
    return path


def _rewrite(src, dst, edit):
    """Copy a .keras zip with config.json edited by `edit(config)`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _first_op(config, function):
    return next(layer for layer in config["config"]["layers"]
                if layer["class_name"] == "TFOpLambda" and layer["config"]["function"] == function)


def test_stock_mobilenet_v3_small_loads_without_trust(mnv3):
    from gate.measure.model import load_model

    result = scan_model(mnv3)
    assert "TFOpLambda" in result.layer_classes
    loaded = load_model(mnv3)
    assert loaded.facts.outputs[0].shape[-1] == 10
    ops = {layer.get_config()["function"] for layer in loaded.keras.layers if type(layer).__name__ == "TFOpLambda"}
    assert ops == {"__operators__.add", "math.multiply"} and ops <= set(PURE_TF_FUNCTIONS)


def test_a_tfoplambda_calling_tf_io_write_file_is_refused(mnv3, tmp_path):
    def edit(config):
        op = _first_op(config, "__operators__.add")
        op["config"]["function"] = "io.write_file"
        op["inbound_nodes"][0][3] = {"contents": ["Conv/BatchNorm", 0, 0], "name": None}

    bad = _rewrite(mnv3, tmp_path / "evil.keras", edit)
    with pytest.raises(ModelError, match=r"class TFOpLambda.*calls tf\.io\.write_file.*only pure arithmetic"):
        scan_model(bad)
    assert scan_model(bad, trust_model_code=True).notes   # trusted: allowed, with a note


@pytest.mark.parametrize("operand", ["/etc/passwd", {"class_name": "Lambda"}, ["a", "b"]])
def test_a_pure_function_with_an_operand_that_is_not_a_number_is_refused(mnv3, tmp_path, operand):
    def edit(config):
        _first_op(config, "math.multiply")["inbound_nodes"][0][3]["y"] = operand

    with pytest.raises(ModelError, match="with arguments that are not tensors or plain numbers"):
        scan_model(_rewrite(mnv3, tmp_path / "odd.keras", edit))


def test_unknown_keys_in_a_pure_op_config_are_refused(mnv3, tmp_path):
    def edit(config):
        _first_op(config, "math.multiply")["config"]["function_type"] = "lambda"

    with pytest.raises(ModelError, match="TFOpLambda"):
        scan_model(_rewrite(mnv3, tmp_path / "odd.keras", edit))
