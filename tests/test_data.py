"""Data splits: every malformed .npz is a DataError naming the file and the field."""
from __future__ import annotations

import numpy as np
import pytest

from gate.errors import DataError
from gate.measure.data import check_fits, head, load_split, representative


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_reads_x_and_y(tmp_path):
    path = save(tmp_path, x=np.zeros((5, 8, 8, 1), np.float32), y=np.arange(5))
    split = load_split(path, "eval")
    assert split.n == 5 and split.y.dtype == np.int64
    assert split.facts()["x_shape"] == [8, 8, 1]


def test_one_hot_and_column_labels_become_class_ids(tmp_path):
    onehot = np.eye(3)[[2, 0, 1]]
    assert load_split(save(tmp_path, x=np.zeros((3, 2)), y=onehot), "eval").y.tolist() == [2, 0, 1]
    col = np.array([[1], [0], [2]])
    assert load_split(save(tmp_path, "c.npz", x=np.zeros((3, 2)), y=col), "eval").y.tolist() == [1, 0, 2]


BAD = [
    ("missing y", dict(x=np.zeros((3, 2))), "data.eval", "missing array(s) y"),
    ("no batch dim", dict(x=np.zeros(3), y=np.zeros(3, int)), "data.eval.x", "batch dimension"),
    ("empty", dict(x=np.zeros((0, 2)), y=np.zeros(0, int)), "data.eval.x", "empty"),
    ("string x", dict(x=np.array([["a", "b"]]), y=np.zeros(1, int)), "data.eval.x", "real numeric"),
    ("nan", dict(x=np.array([[np.nan, 1.0], [0, 0]]), y=np.zeros(2, int)), "data.eval.x", "NaN or infinite values in 1"),
    ("inf", dict(x=np.array([[np.inf, 1.0]]), y=np.zeros(1, int)), "data.eval.x", "NaN or infinite"),
    ("length", dict(x=np.zeros((3, 2)), y=np.zeros(2, int)), "data.eval.y", "x has 3 examples but y has 2"),
    ("fractional y", dict(x=np.zeros((2, 2)), y=np.array([0.5, 1.0])), "data.eval.y", "integer class ids"),
    ("negative y", dict(x=np.zeros((2, 2)), y=np.array([-1, 1])), "data.eval.y", "negative"),
    ("3d y", dict(x=np.zeros((2, 2)), y=np.zeros((2, 2, 2))), "data.eval.y", "shape (N,)"),
]


@pytest.mark.parametrize("case,arrays,field,text", BAD, ids=[b[0] for b in BAD])
def test_bad_arrays(tmp_path, case, arrays, field, text):
    path = save(tmp_path, **arrays)
    with pytest.raises(DataError) as info:
        load_split(path, "eval")
    assert info.value.field == field
    assert text in info.value.message
    assert info.value.file == str(path)
    assert info.value.exit_code == 2


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
        check_fits(split, (None, 8, 8, 1), 10)
    assert "x has shape (4, 8, 8), the model expects (N, 8, 8, 1)" in info.value.message
    check_fits(split, (None, 8, None), 10)  # None matches any size


def test_labels_must_fit_the_classes(tmp_path):
    split = load_split(save(tmp_path, x=np.zeros((2, 3)), y=np.array([0, 10])), "eval")
    with pytest.raises(DataError, match="class id 10, but the model has 10 output"):
        check_fits(split, (None, 3), 10)


def test_representative_is_seeded_and_bounded(tmp_path):
    split = load_split(save(tmp_path, x=np.arange(100.0).reshape(50, 2), y=np.zeros(50, int)), "train")
    a, b = representative(split, 10), representative(split, 10)
    assert a.shape == (10, 2) and np.array_equal(a, b)
    assert representative(split, 500).shape == (50, 2)
    assert head(split, 5).n == 5 and head(split, None).n == 50
