"""DataLoader (batching, seeded shuffling, drop_last) and the digits loader."""
import sys

import numpy as np
import pytest

import fastnn
from fastnn.data import DataLoader, TensorDataset, load_digits


def test_batches_cover_the_data_in_order():
    X = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    dl = DataLoader((X, y), batch_size=4)
    batches = list(dl)
    assert len(dl) == len(batches) == 3
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], fastnn.Tensor) and batches[0][0].dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([b[1]._data for b in batches]), y)
    dl = DataLoader(TensorDataset(X, y), batch_size=4, drop_last=True)
    assert len(dl) == 2 and [len(b[1]) for b in dl] == [4, 4]


def test_shuffle_is_seeded_and_changes_every_epoch():
    y = np.arange(100)
    def epochs(seed):
        dl = DataLoader((y, y), batch_size=10, shuffle=True, seed=seed)
        return [np.concatenate([b[0]._data for b in dl]) for _ in range(2)]
    a, b = epochs(1), epochs(1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], y)
    np.testing.assert_array_equal(np.sort(a[0]), y)
    assert not np.array_equal(epochs(2)[0], a[0])
    x, t = next(iter(DataLoader((y * 2, y), batch_size=10, shuffle=True, seed=0)))
    np.testing.assert_array_equal(x._data, 2 * t._data)  # arrays stay aligned


def test_generic_dataset_is_collated():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], np.float32), i
    batches = list(DataLoader(Squares(), batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    np.testing.assert_array_equal(batches[1][1]._data, [2, 3])


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader((np.ones(3),), batch_size=0)
    with pytest.raises(AssertionError, match="Size mismatch"):  # PyTorch's error
        TensorDataset(np.ones(3), np.ones(4))


def test_load_digits_split_is_reproducible_and_stratified():
    d = load_digits()
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert 0 <= d.X_train.min() and d.X_train.max() <= 1
    again = load_digits()
    np.testing.assert_array_equal(d.X_test, again.X_test)
    np.testing.assert_array_equal(d.y_train, again.y_train)
    assert np.bincount(d.y_test).min() >= 35  # every class in the test set (stratified)
    other = load_digits(seed=1)
    assert not np.array_equal(other.y_test, d.y_test)
    # train and test never share an image index: together they are all 1797 rows once
    assert len(d.y_train) + len(d.y_test) == 1797


def test_load_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()
