"""Data sources (gate.measure.sources): every bad source ends in exit 2 naming the file and
the field, with a report written, before TF is imported; Git LFS pointers; digests by
content; streaming pieces (npz memmaps, lazy scaling); the pure-Python TFRecord reader."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import run_check
from test_data import facts

from gate.config.sources import ImagesSource, SourceRef, TFRecordSource, resolve
from gate.measure.data import Split, bind, load_split, range_notes
from gate.measure.sources import digest, npz, tfrecord
from gate.measure.sources.base import Scaled, sample_indices

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "image-folders"
LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 12345\n"


# -- a TFRecord writer without TF (the masked crc32c TFRecord readers check) -----------------------

def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def example(**features) -> bytes:
    """A tf.train.Example: bytes -> bytes_list, float arrays -> float_list, ints -> int64_list."""
    entries = b""
    for name, value in features.items():
        if isinstance(value, bytes):
            feature = _len(1, _len(1, value))
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            feature = _len(2, _len(1, value.astype("<f4").tobytes()))
        else:
            feature = _len(3, _len(1, b"".join(_varint(int(v)) for v in np.atleast_1d(value))))
        entries += _len(1, _len(1, name.encode()) + _len(2, feature))
    return _len(1, entries)


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for r in records:
            head = struct.pack("<Q", len(r))
            f.write(head + struct.pack("<I", _crc32c(head)) + r + struct.pack("<I", _crc32c(r)))


# -- every bad source: exit 2, file and field named, report written (no TF) ------------------------

def _project(tmp_path: Path, data: str) -> Path:
    shutil.copy(EXAMPLE / "model.keras", tmp_path / "model.keras")
    shutil.copytree(EXAMPLE / "data" / "eval", tmp_path / "eval")
    (tmp_path / "gate.yml").write_text(f"model: model.keras\npolicy: float32\ndata:\n  eval: {data}\n")
    return tmp_path / "gate.yml"


def _empty_class(d: Path) -> None:
    shutil.rmtree(d / "eval" / "3")
    (d / "eval" / "3").mkdir()


def _unreadable_image(d: Path) -> None:
    (d / "eval" / "4" / "broken.png").write_bytes(b"not a png at all")


def _tfrecord(d: Path) -> None:
    write_tfrecord(d / "eval.tfrecord", [example(image=(d / "eval/0/0160.png").read_bytes(), label=0)])


def _csv(d: Path) -> None:
    (d / "eval.csv").write_text("a,b,target\n1,2,3\n")


def _loader(d: Path) -> None:
    (d / "tools").mkdir()
    (d / "tools" / "data.py").write_text("def eval_split():\n    raise RuntimeError('bucket not mounted')\n")
    text = (d / "gate.yml").read_text()
    (d / "gate.yml").write_text(text + "trust_model_code: true\n")


BAD = [
    ("missing-folder", "{images: nowhere/, scale: 1/255}", None, "gate.yml", "data.eval.images", "not found"),
    ("empty-class", "{images: eval/, scale: 1/255}", _empty_class, "eval/3", "data.eval.images",
     "class '3' has no images"),
    ("unreadable-image", "{images: eval/}", _unreadable_image, "eval/4/broken.png", "data.eval.images",
     "not a readable image"),
    ("tfrecord-feature-missing", "{tfrecord: eval.tfrecord, x: img, y: label}", _tfrecord, "eval.tfrecord",
     "data.eval.x", "feature 'img' is not in record 0; its features: ['image', 'label']"),
    ("csv-column-missing", "{csv: eval.csv, y: progression}", _csv, "eval.csv", "data.eval.y",
     "column 'progression' is not in the CSV header"),
    ("untrusted-loader", "{python: 'tools/data.py:eval_split'}", lambda d: (d / "tools").mkdir() or
     (d / "tools/data.py").write_text("def eval_split(): ...\n"), "tools/data.py", "data.eval.python",
     "is code, and trust_model_code is not honoured"),
]


@pytest.mark.parametrize("data, prepare, file, field, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_source_exits_2_naming_file_and_field(tmp_path, monkeypatch, data, prepare, file, field, message):
    monkeypatch.delenv("GITHUB_EVENT_NAME", raising=False)
    config = _project(tmp_path, data)
    if prepare is not None:
        prepare(tmp_path)
    result, report = run_check(tmp_path, config, "--no-baseline")
    assert result.exit_code == 2, result.output
    error = report["error"]
    assert error["field"] == field and error["file"].endswith(file), error
    assert message in error["message"]


FORMS = [
    ("images", "{images: eval/, scale: 1/255, class_names: ['0','1','2','3','4','5','6','7','8','9']}", None),
    ("tfrecord", "{tfrecord: eval.tfrecord, x: image, y: label, scale: 1/255, compression: none}", _tfrecord),
    ("csv", "{csv: eval.csv, y: target, x: [a, b], max_examples: 1, seed: 3}", _csv),
    ("python", "{python: 'tools/data.py:eval_split'}", _loader),
]


@pytest.mark.parametrize("data, prepare", [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_each_source_form_reaches_the_worker_unchanged(tmp_path, data, prepare):
    """The worker gets the validated GateConfig in its Job (JSON): each source keeps its own
    typed form (x, y, scale, ...), not a bare mapping without its options."""
    from gate.config.load import load_config
    from gate.run.protocol import Job

    config = _project(tmp_path, data)
    if prepare is not None:
        prepare(tmp_path)
    cfg = load_config(config)
    job = Job.model_validate_json(Job(kind="check", config=cfg, trust_model_code=False).model_dump_json())
    assert job.config.eval_source == cfg.eval_source
    assert type(job.config.eval_source.spec) is type(cfg.eval_source.spec)


@pytest.mark.slow
def test_loader_that_raises_exits_2_naming_file_and_field(tmp_path, monkeypatch):
    """The loader runs in the worker (it is code): its exception names the loader and the field."""
    monkeypatch.delenv("GITHUB_EVENT_NAME", raising=False)
    config = _project(tmp_path, "{python: 'tools/data.py:eval_split'}")
    _loader(tmp_path)
    result, report = run_check(tmp_path, config, "--no-baseline")
    assert result.exit_code == 2, result.output
    error = report["error"]
    assert error["field"] == "data.eval.python" and error["file"].endswith("tools/data.py")
    assert error["message"] == "the loader data.py:eval_split raised RuntimeError: bucket not mounted"


@pytest.mark.parametrize("what", ["model", "eval"])
def test_git_lfs_pointer_exits_2_saying_so(tmp_path, what):
    config = _project(tmp_path, "eval.npz")
    np.savez(tmp_path / "eval.npz", x=np.zeros((2, 16, 16, 1), np.float32), y=np.zeros(2))
    (tmp_path / ("model.keras" if what == "model" else "eval.npz")).write_bytes(LFS)
    result, report = run_check(tmp_path, config, "--no-baseline")
    assert result.exit_code == 2, result.output
    assert report["error"]["message"] == "Git LFS pointer: run `git lfs pull`, or `lfs: true` on actions/checkout"
    assert report["error"]["field"] == ("model" if what == "model" else "data.eval.npz")
    assert "lfs: true" in report["error"]["hint"]


def test_policy_file_as_lfs_pointer_is_refused(tmp_path):
    config = _project(tmp_path, "{images: eval/}")
    (tmp_path / "policy.yml").write_bytes(LFS)
    config.write_text(config.read_text().replace("policy: float32", "policy: policy.yml"))
    result, report = run_check(tmp_path, config, "--no-baseline")
    assert result.exit_code == 2 and report["error"]["message"].startswith("Git LFS pointer")


# -- digests: by content, not by name ----------------------------------------------------------------

def _images_ref(root: Path) -> SourceRef:
    ref, why = resolve(ImagesSource(images=str(root)), Path("/"), "data.eval")
    assert why is None
    return ref


def test_images_digest_follows_content_not_folder_name(tmp_path):
    a = tmp_path / "a"
    shutil.copytree(EXAMPLE / "data" / "eval", a)
    first = digest(_images_ref(a), False)
    a.rename(tmp_path / "renamed")
    assert digest(_images_ref(tmp_path / "renamed"), False) == first
    png = next((tmp_path / "renamed" / "5").iterdir())
    png.write_bytes(png.read_bytes()[:-1] + b"\x01")
    changed = digest(_images_ref(tmp_path / "renamed"), False)
    assert changed != first
    png.rename(tmp_path / "renamed" / "6" / png.name)        # relabelled: another class folder
    assert digest(_images_ref(tmp_path / "renamed"), False) not in (first, changed)


# -- streaming pieces -------------------------------------------------------------------------------

def test_uncompressed_npz_members_are_memory_mapped(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.savez(tmp_path / "plain.npz", x=x, y=np.array([1, 0]))
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=np.array([1, 0]))
    plain, packed = npz.read(tmp_path / "plain.npz", "data.eval"), npz.read(tmp_path / "packed.npz", "data.eval")
    assert isinstance(plain["x"], np.memmap) and not isinstance(packed["x"], np.memmap)
    np.testing.assert_array_equal(plain["x"], x)
    np.testing.assert_array_equal(packed["x"], x)


def test_scaled_applies_per_slice():
    base = np.arange(12, dtype=np.uint8).reshape(3, 4)
    s = Scaled(base, 1 / 255, -0.5)
    assert s.dtype == np.float32 and s.shape == (3, 4) and len(s) == 3
    part = s[1:3]
    assert isinstance(part, Scaled)
    np.testing.assert_allclose(np.asarray(part), base[1:3] / 255 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(s[np.array([0, 2])], base[[0, 2]] / 255 - 0.5, rtol=1e-6)


def test_sample_is_seeded_sorted_and_applies_to_max_examples():
    assert sample_indices(10, None, 3) is None and list(sample_indices(10, 3, None)) == [0, 1, 2]
    a, b = sample_indices(100, 5, 7), sample_indices(100, 5, 7)
    assert list(a) == list(b) == sorted(a) and list(a) != [0, 1, 2, 3, 4]


def test_tfrecord_reader_parses_examples_and_gzip(tmp_path):
    import gzip

    records = [example(pixels=np.array([0.5, 1.5], np.float32), label=7, tag=b"abc")]
    write_tfrecord(tmp_path / "a.tfrecord", records)
    raw = (tmp_path / "a.tfrecord").read_bytes()
    (tmp_path / "b.tfrecord.gz").write_bytes(gzip.compress(raw))
    for name in ("a.tfrecord", "b.tfrecord.gz"):
        [data] = list(tfrecord.records(tmp_path / name, "auto", "data.eval"))
        parsed = tfrecord.parse_example(data)
        assert parsed["label"][0] == "int64" and parsed["label"][1].tolist() == [7]
        assert parsed["pixels"][0] == "float" and parsed["pixels"][1].tolist() == [0.5, 1.5]
        assert parsed["tag"] == ("bytes", [b"abc"])
    ref, _ = resolve(TFRecordSource(tfrecord="*.tfrecord*", x="pixels", y="label"), tmp_path, "data.eval")
    assert [p.name for p in ref.files] == ["a.tfrecord", "b.tfrecord.gz"]
    tfrecord.check(ref, False)


# -- notes: unused arrays, value ranges --------------------------------------------------------------

def test_unused_array_and_range_notes(tmp_path):
    tiny_facts = facts()
    np.savez(tmp_path / "train.npz", x=np.random.default_rng(0).random((4, 8, 8, 1), np.float32), y=[0, 1, 2, 3])
    np.savez(tmp_path / "eval.npz", x=np.full((4, 8, 8, 1), 200, np.float32), label=[0, 1, 2, 3])
    train = bind(load_split(tmp_path / "train.npz", "train"), tiny_facts)
    ev = bind(load_split(tmp_path / "eval.npz", "eval"), tiny_facts)
    assert ev.notes == ("unused array 'label' in eval.npz (data.eval.label): inputs are named 'x' (or the model's "
                        "input names), targets are named 'y'",)
    [note] = range_notes(train, ev)
    assert note.startswith("warning: eval inputs 'x' range 200..200 but train inputs range 0.")
    assert range_notes(train, train) == [] and isinstance(ev, Split)


# -- streamed inputs through evaluation and fine-tuning (the tiny digits CNN) -----------------------

def test_memory_mapped_split_evaluates_and_fine_tunes_like_arrays(tiny, tiny_model):
    from gate.config.steps import Finetune
    from gate.measure.evaluate import run_keras
    from gate.measure.tfenv import keras
    from gate.optimize.finetune import fit

    split = bind(load_split(tiny.eval, "eval"), tiny_model.facts)
    assert split.streamed and isinstance(split.x["image"], np.memmap)
    outputs = run_keras(tiny_model.keras, split, 64)["classifier"]
    np.testing.assert_allclose(outputs, tiny_model.keras.predict(tiny.x_eval, verbose=0), atol=1e-6)

    train = bind(load_split(tiny.train, "train"), tiny_model.facts)
    k = keras()
    model = k.models.clone_model(tiny_model.keras)
    model.set_weights(tiny_model.keras.get_weights())
    model.compile(optimizer=k.optimizers.SGD(1e-2), loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    fit(model, Finetune(epochs=1, batch_size=100), train.x["image"], train.y["classifier"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("io", ["float32", "int8"])
def test_eval_range_outside_the_calibrated_range_is_warned(tiny, tiny_model, io):
    """An int8 .tflite calibrated on 0..1 pixels, scored on 0..255 ones: a warning naming both ranges."""
    from gate.config.schema import ConvertSpec
    from gate.measure.calibrated import calibration_notes
    from gate.measure.convert import to_tflite

    samples = {"image": tiny.x_train[:64]}
    content = to_tflite(tiny_model.keras, ConvertSpec(quantization="int8", io=io), samples).content
    assert calibration_notes(content, {"image": (0.0, 1.0)}, ["image"], "m.tflite") == []
    [note] = calibration_notes(content, {"image": (0.0, 255.0)}, ["image"], "m.tflite")
    assert note.startswith("warning: eval inputs 'image' range 0..255, but m.tflite was calibrated for ")


def test_csv_source_reads_columns_and_samples(tmp_path):
    from gate.config.sources import CsvSource
    from gate.measure.sources import csv as csv_source

    rows = "\n".join(f"{i},{i * 2},{i % 3}" for i in range(20))
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows + "\n")
    flat = facts(inputs=(("features", (None, 2), "float32"),), outputs=(("score", (None, 1), "linear"),))
    ref, _ = resolve(CsvSource(csv="d.csv", y="label"), tmp_path, "data.eval")
    arrays = csv_source.load(ref, flat, False)
    assert arrays["x"].dtype == np.float32 and arrays["x"].shape == (20, 2) and arrays["y"].tolist()[:4] == [0, 1, 2, 0]
    ref, _ = resolve(CsvSource(csv="d.csv", y="label", x=["b"], max_examples=5, seed=1), tmp_path, "data.eval")
    sampled = csv_source.load(ref, flat, False)
    assert sampled["x"].shape == (5, 1) and list(sampled["x"][:, 0] / 2) == sorted(sampled["x"][:, 0] / 2)
    assert sampled["x"][:, 0].tolist() != [0, 2, 4, 6, 8]
    assert digest(ref, False) != digest(resolve(CsvSource(csv="d.csv", y="label"), tmp_path, "data.eval")[0], False)
