"""The examples/ directories, each run with `gate check` as a user would (slow: real models;
they still run in CI): a Keras 3 CNN (int8 and prune-int8), an int32 text model, a
regression model (MAE limits), a committed float .tflite (int8 and dynamic-range)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_check

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.slow


def gzip_ratio(report: dict) -> float:
    return report["reference"]["bytes_gzip"] / report["candidate"]["bytes_gzip"]


def drop(report: dict) -> float:
    return report["original"]["accuracy"]["top1"] - report["candidate"]["evaluation"]["accuracy"]["top1"]


def variant(tmp_path: Path, example: str, config: str = "gate.yml", **overrides) -> Path:
    """The example's config with overrides, written next to tmp_path with absolute paths."""
    data = yaml.safe_load((EXAMPLES / example / config).read_text())
    data["model"] = str(EXAMPLES / example / data["model"])
    data["data"] = {k: str(EXAMPLES / example / v) for k, v in data["data"].items()}
    data.update(overrides)
    path = tmp_path / "gate.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_keras3_cnn_passes_int8(tmp_path):
    result, report = run_check(tmp_path, EXAMPLES / "keras3-cnn" / "gate.yml")
    assert result.exit_code == 0, result.output
    assert report["model"]["flavour"] == "keras3" and report["candidate"]["quantization"] == "int8"
    assert drop(report) <= 0.01 and gzip_ratio(report) >= 3.0
    assert "Saved artifact" not in result.output      # Keras 3's export chatter stays off the terminal


def test_keras3_cnn_passes_prune_int8_through_the_bridge(tmp_path):
    result, report = run_check(tmp_path, EXAMPLES / "keras3-cnn" / "gate-prune.yml")
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in report["stages"]] == ["original", "pruned", "qat", "converted"]
    assert report["bridge"]["max_abs_diff"] <= report["bridge"]["tolerance"]
    assert gzip_ratio(report) >= 5.0 and drop(report) <= 0.03


def test_int32_text_model_int8_within_two_points(tmp_path):
    result, report = run_check(tmp_path, EXAMPLES / "text-int32" / "gate.yml")
    assert result.exit_code == 0, result.output
    assert report["model"]["inputs"][0]["dtype"] == "int32"
    assert report["data"]["eval"]["x_dtype"] == "int32"
    assert drop(report) <= 0.02 and report["candidate"]["calibration_samples"] == 200


def test_int32_text_model_qat_keeps_its_integer_input_unquantized(tmp_path):
    """tfmot put a FakeQuant after the int32 token ids (exit 3): they now stay unquantized,
    the Embedding is left float with its reason, the Dense trains quantization-aware."""
    result, report = run_check(tmp_path, EXAMPLES / "text-int32" / "gate.yml", "--policy", "qat-int8",
                               "--in-process", "--no-cache")
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in report["stages"]] == ["original", "qat", "converted"]
    assert any("left float: Embedding (1: embedding)" in n for n in report["notes"])
    assert drop(report) <= 0.02 and gzip_ratio(report) >= 3.0


def test_regression_mae_loose_passes_tight_fails(tmp_path):
    result, report = run_check(tmp_path, EXAMPLES / "regression" / "gate.yml")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["metrics.mae.max"]["passed"] and checks["metrics.mae.max_increase"]["ci_low"] is not None
    assert report["model"]["tasks"]["progression"]["kind"] == "regression"
    assert "accuracy 0.00" not in result.output and report["original"]["accuracy"] == {}
    tight = variant(tmp_path, "regression", thresholds={"metrics": {"mae": {"max": 20.0}}})
    result, report = run_check(tmp_path / "tight", tight)
    assert result.exit_code == 1
    [check] = report["checks"]
    assert check["name"] == "metrics.mae.max" and not check["passed"]
    assert "metrics.mae.max FAILED: mae" in result.output


@pytest.mark.parametrize("config,recipe", [("gate.yml", "static_wi8_ai8"),
                                           ("gate-dynamic.yml", "dynamic_legacy_wi8_afp32")])
def test_committed_float_tflite_is_quantized(tmp_path, config, recipe):
    result, report = run_check(tmp_path, EXAMPLES / "tflite" / config)
    assert result.exit_code == 0, result.output
    assert report["candidate"]["quantization"] == recipe and report["candidate"]["quantizer"] == "litert"
    assert report["reference"]["label"] == "model.tflite, float32" and report["reference"]["precision"] == "float"
    assert gzip_ratio(report) >= 2.5
    assert report["reference"]["latency"] != report["candidate"]["latency"]    # both were timed


# -- data sources: the same figures whatever the data's form (docs/configuration.md, Data) ----------

IMAGES = EXAMPLES / "image-folders"


def _keras3():
    import os

    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import keras

    return keras


def _image_project(tmp_path: Path, data: dict, **extra) -> Path:
    config = {"model": str(IMAGES / "model.keras"), "data": data, "policy": "int8",
              "thresholds": {"accuracy": {"min": 0.9}}, "benchmark": {"warmup": 2, "runs": 5}, **extra}
    path = tmp_path / "gate.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_image_folders_accuracy_equals_keras_evaluate_and_tfrecord_and_loader_agree(tmp_path):
    """`{images: DIR, scale: 1/255}` scores the Keras 3 model exactly as model.evaluate on
    keras.utils.image_dataset_from_directory; the same PNGs in TFRecord (bytes + int64
    labels) and through a python loader give the same figure."""
    import tensorflow as tf

    keras = _keras3()
    result, report = run_check(tmp_path / "images", IMAGES / "gate.yml", "--no-baseline")
    assert result.exit_code == 0, result.output
    assert report["data"]["eval"]["source"] == "images" and report["data"]["eval"]["examples"] == 200
    gate_accuracy = report["original"]["accuracy"]["top1"]
    ds = keras.utils.image_dataset_from_directory(IMAGES / "data" / "eval", color_mode="grayscale",
                                                  image_size=(16, 16), shuffle=False, batch_size=32)
    model = keras.saving.load_model(IMAGES / "model.keras")
    _, keras_accuracy = model.evaluate(ds.map(lambda x, y: (x / 255.0, y)), verbose=0)
    assert gate_accuracy == pytest.approx(keras_accuracy, abs=1e-6)

    classes = sorted(p.name for p in (IMAGES / "data" / "eval").iterdir())
    shards = [tmp_path / f"eval-{i}.tfrecord" for i in range(2)]
    writers = [tf.io.TFRecordWriter(str(s)) for s in shards]
    for i, png in enumerate(sorted((IMAGES / "data" / "eval").rglob("*.png"))):
        features = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.read_bytes()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[classes.index(png.parent.name)]))}
        writers[i % 2].write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    for w in writers:
        w.close()
    tfrecord = _image_project(tmp_path, {"train": {"images": str(IMAGES / "data" / "train"), "scale": "1/255"},
                                         "eval": {"tfrecord": str(tmp_path / "eval-*.tfrecord"), "x": "image",
                                                  "y": "label", "scale": "1/255"}})
    result, report = run_check(tmp_path / "tfrecord", tfrecord, "--no-baseline")
    assert result.exit_code == 0, result.output
    assert report["data"]["eval"]["source"] == "tfrecord"
    assert report["original"]["accuracy"]["top1"] == gate_accuracy

    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "data.py").write_text(
        "import keras\n\n"
        "def eval_split():\n"
        f"    ds = keras.utils.image_dataset_from_directory({str(IMAGES / 'data' / 'eval')!r}, "
        "color_mode='grayscale', image_size=(16, 16), shuffle=False, batch_size=64)\n"
        "    return ds.map(lambda x, y: (x / 255.0, y))\n")
    loader = _image_project(tmp_path, {"train": {"images": str(IMAGES / "data" / "train"), "scale": "1/255"},
                                       "eval": {"python": "tools/data.py:eval_split"}}, trust_model_code=True)
    result, report = run_check(tmp_path / "loader", loader, "--no-baseline")
    assert result.exit_code == 0, result.output
    assert report["original"]["accuracy"]["top1"] == gate_accuracy


def test_csv_regression_is_judged_on_mae(tmp_path):
    """The regression example's data as CSV files: the same model judged on mae."""
    import numpy as np

    keras = _keras3()
    columns = [f"f{i}" for i in range(10)]
    for split in ("train", "eval"):
        with np.load(EXAMPLES / "regression" / f"{split}.npz") as d:
            x, y = d["x"], d["y"]
        rows = [",".join(repr(float(v)) for v in (*row, target)) for row, target in zip(x, y)]
        (tmp_path / f"{split}.csv").write_text(",".join(columns + ["progression"]) + "\n" + "\n".join(rows) + "\n")
    config = variant(tmp_path, "regression")
    data = yaml.safe_load(config.read_text())
    data["data"] = {"train": {"csv": str(tmp_path / "train.csv"), "y": "progression"},
                    "eval": {"csv": str(tmp_path / "eval.csv"), "y": "progression", "x": columns}}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    result, report = run_check(tmp_path / "out", config, "--no-baseline")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["metrics.mae.max"]["passed"] and report["data"]["eval"]["source"] == "csv"
    model = keras.saving.load_model(EXAMPLES / "regression" / "model.keras")
    with np.load(EXAMPLES / "regression" / "eval.npz") as d:
        expected = float(np.mean(np.abs(model.predict(d["x"], verbose=0)[:, 0] - d["y"])))
    assert report["original"]["metrics"]["mae"] == pytest.approx(expected, rel=1e-5)
