"""Data splits: every malformed .npz is a DataError naming the file and the field; arrays are
bound to the model's inputs and outputs by name (x / one per input, y / y.<output>)."""
from __future__ import annotations

import numpy as np
import pytest

from gate.errors import DataError
from gate.measure.data import bind, head, load_split, representative
from gate.measure.model import ModelFacts, TensorSpec


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def facts(inputs=(("image", (None, 8, 8, 1), "float32"),), outputs=(("classifier", (None, 10), "softmax"),)):
    return ModelFacts("keras", "m.keras", 1, 1, 1, tuple(TensorSpec(n, s, d) for n, s, d in inputs),
                      tuple(TensorSpec(n, s, "float32", a) for n, s, a in outputs))


CLASSIFIER = facts()


def test_reads_x_and_y(tmp_path):
    path = save(tmp_path, x=np.zeros((5, 8, 8, 1), np.float32), y=np.arange(5))
    split = bind(load_split(path, "eval"), CLASSIFIER)
    assert split.n == 5 and split.y["classifier"].dtype == np.int64
    assert split.facts()["x_shape"] == [8, 8, 1]
    assert split.tasks["classifier"].kind == "classifier"


def test_one_hot_and_column_labels_become_class_ids(tmp_path):
    two = facts(inputs=(("x", (None, 2), "float32"),), outputs=(("c", (None, 3), "softmax"),))
    onehot = np.eye(3)[[2, 0, 1]]
    assert bind(load_split(save(tmp_path, x=np.zeros((3, 2)), y=onehot), "eval"), two).y["c"].tolist() == [2, 0, 1]
    col = np.array([[1], [0], [2]])
    assert bind(load_split(save(tmp_path, "c.npz", x=np.zeros((3, 2)), y=col), "eval"), two).y["c"].tolist() == \
        [1, 0, 2]


FLAT = facts(inputs=(("x", (None, 2), "float32"),), outputs=(("c", (None, 10), "softmax"),))
BAD_LOAD = [
    ("no batch dim", dict(x=np.zeros(3), y=np.zeros(3, int)), "data.eval.x", "batch dimension"),
    ("empty", dict(x=np.zeros((0, 2)), y=np.zeros(0, int)), "data.eval.x", "empty"),
    ("string x", dict(x=np.array([["a", "b"]]), y=np.zeros(1, int)), "data.eval.x", "real numeric"),
    ("nan", dict(x=np.array([[np.nan, 1.0], [0, 0]]), y=np.zeros(2, int)), "data.eval.x", "NaN or infinite values in 1"),
    ("inf", dict(x=np.array([[np.inf, 1.0]]), y=np.zeros(1, int)), "data.eval.x", "NaN or infinite"),
    ("length", dict(x=np.zeros((3, 2)), y=np.zeros(2, int)), "data.eval.y", "x has 3 examples but y has 2"),
]
BAD_BIND = [
    ("missing x", dict(inputs=np.zeros((3, 2)), y=np.zeros(3, int)), "data.eval.x", "missing array x"),
    ("negative y", dict(x=np.zeros((2, 2)), y=np.array([-1, 1])), "data.eval.y", "negative"),
    ("3d y", dict(x=np.zeros((2, 2)), y=np.zeros((2, 2, 2))), "data.eval.y", "value(s) per example"),
    ("y of an unknown output", dict(x=np.zeros((2, 2)), **{"y.score": np.zeros(2)}), "data.eval.y.score",
     "names no output"),
]


@pytest.mark.parametrize("case,arrays,field,text", BAD_LOAD + BAD_BIND, ids=[b[0] for b in BAD_LOAD + BAD_BIND])
def test_bad_arrays(tmp_path, case, arrays, field, text):
    path = save(tmp_path, **arrays)
    with pytest.raises(DataError) as info:
        bind(load_split(path, "eval"), FLAT)
    assert info.value.field == field
    assert text in info.value.message
    assert info.value.file == str(path)
    assert info.value.exit_code == 2


def test_fractional_targets_of_a_classifier_are_a_regression_of_the_wrong_shape(tmp_path):
    # float targets make the output a regression: one value per example against 10 units
    with pytest.raises(DataError, match="1 value\\(s\\) per example, output 'c' has 10"):
        bind(load_split(save(tmp_path, x=np.zeros((2, 2)), y=np.array([0.5, 1.0])), "eval"), FLAT)


def test_object_arrays_are_refused_without_pickle(tmp_path):
    path = save(tmp_path, x=np.array([object(), object()], dtype=object), y=np.zeros(2, int))
    with pytest.raises(DataError, match="without pickle"):
        load_split(path, "eval")


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_split(path, "train")


def test_shape_must_fit_the_model(tmp_path):
    split = load_split(save(tmp_path, x=np.zeros((4, 8, 8)), y=np.zeros(4, int)), "eval")
    with pytest.raises(DataError) as info:
        bind(split, CLASSIFIER)
    assert "x has shape (4, 8, 8), the model expects (N, 8, 8, 1)" in info.value.message
    bind(split, facts(inputs=(("image", (None, 8, None), "float32"),)))  # None matches any size


def test_labels_must_fit_the_classes(tmp_path):
    split = load_split(save(tmp_path, x=np.zeros((2, 3)), y=np.array([0, 10])), "eval")
    with pytest.raises(DataError, match="class id 10, but output 'c' has 10 unit"):
        bind(split, facts(inputs=(("x", (None, 3), "float32"),), outputs=(("c", (None, 10), "softmax"),)))


def test_representative_is_seeded_bounded_and_keeps_dtypes(tmp_path):
    split = bind(load_split(save(tmp_path, x=np.arange(100, dtype=np.int32).reshape(50, 2), y=np.zeros(50, int)),
                            "train"), facts(inputs=(("tokens", (None, 2), "int32"),)))
    a, b = representative(split, 10), representative(split, 10)
    assert a["tokens"].shape == (10, 2) and np.array_equal(a["tokens"], b["tokens"])
    assert a["tokens"].dtype == np.int32
    assert representative(split, 500)["tokens"].shape == (50, 2)
    assert head(split, 5).n == 5 and head(split, None).n == 50


TWO_IO = facts(inputs=(("zeta_image", (None, 8, 8, 1), "float32"), ("alpha_stats", (None, 16), "float32")),
               outputs=(("digit", (None, 10), "softmax"), ("ink", (None, 1), "linear")))


def test_several_inputs_and_outputs_by_name(tmp_path):
    n = 6
    path = save(tmp_path, zeta_image=np.zeros((n, 8, 8, 1), np.float32), alpha_stats=np.ones((n, 16), np.float32),
                **{"y.digit": np.arange(n), "y.ink": np.linspace(0, 1, n)})
    split = bind(load_split(path, "eval"), TWO_IO)
    assert list(split.x) == ["zeta_image", "alpha_stats"]
    assert split.tasks["digit"].kind == "classifier" and split.tasks["ink"].kind == "regression"
    assert split.y["ink"].shape == (n, 1) and split.y["digit"].dtype == np.int64
    assert split.first()["alpha_stats"].shape == (1, 16)


def test_several_inputs_name_the_missing_array(tmp_path):
    path = save(tmp_path, zeta_image=np.zeros((2, 8, 8, 1)), **{"y.digit": np.zeros(2, int)})
    with pytest.raises(DataError) as info:
        bind(load_split(path, "eval"), TWO_IO)
    assert info.value.field == "data.eval.alpha_stats"
    assert "one array per input name (zeta_image, alpha_stats)" in info.value.message


def test_a_bare_y_is_refused_for_several_outputs(tmp_path):
    path = save(tmp_path, zeta_image=np.zeros((2, 8, 8, 1)), alpha_stats=np.zeros((2, 16)), y=np.zeros(2, int))
    with pytest.raises(DataError, match="'y.digit', 'y.ink'"):
        bind(load_split(path, "eval"), TWO_IO)


def test_targets_are_optional(tmp_path):
    split = bind(load_split(save(tmp_path, x=np.zeros((3, 8, 8, 1))), "eval"), CLASSIFIER)
    assert split.y == {} and split.tasks["classifier"].kind == "classifier"


def test_integer_inputs_refuse_fractions(tmp_path):
    tokens = facts(inputs=(("tokens", (None, 4), "int32"),))
    with pytest.raises(DataError, match="non-integer values, but the model's input 'tokens' is int32"):
        bind(load_split(save(tmp_path, x=np.full((2, 4), 0.5), y=np.zeros(2, int)), "eval"), tokens)


@pytest.mark.parametrize("y,units,activation,kind", [
    (np.array([0.0, 1.0, 1.0]), 1, "sigmoid", "binary"),
    (np.array([0, 1, 1]), 1, None, "binary"),
    (np.array([0.0, 1.0, 1.0]), 1, "linear", "regression"),
    (np.array([151.0, 75.0, 141.0]), 1, None, "regression"),
    (np.array([0.2, 0.5, 0.1]), 1, "sigmoid", "regression"),
    (np.array([2, 0, 1]), 3, "softmax", "classifier"),
    (np.array([[0.1, 0.2, 0.3]] * 3), 3, "linear", "regression"),
])
def test_task_inference(y, units, activation, kind):
    from gate.measure.tasks import infer_task

    assert infer_task(TensorSpec("o", (None, units), "float32", activation), y).kind == kind
