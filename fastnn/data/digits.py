"""scikit-learn's bundled 8x8 handwritten digits (1797 images), split reproducibly."""
from collections import namedtuple

import numpy as np

Digits = namedtuple("Digits", ["X_train", "y_train", "X_test", "y_test"])


def load_digits(test_fraction=0.2, seed=0, dtype=np.float32):
    """Digits as (X_train, y_train, X_test, y_test): X (n, 64) scaled to [0, 1], y int64 labels.

    The split is stratified per class and fixed by `seed`, so every run (and every machine) sees
    the same test set. Needs scikit-learn, which ships the data."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError("fastnn.data.load_digits needs scikit-learn, which ships the digits "
                          "data: pip install scikit-learn (or pip install 'fastnn[data]')") from e
    if not 0 < test_fraction < 1:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    data = _sk_load_digits()
    X = (data.data / 16.0).astype(dtype)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        rng.shuffle(rows)
        test.extend(rows[:int(round(len(rows) * test_fraction))])
    is_test = np.zeros(len(y), bool)
    is_test[test] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = np.flatnonzero(is_test)
    return Digits(X[train_idx], y[train_idx], X[test_idx], y[test_idx])
