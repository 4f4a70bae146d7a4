"""Numba embedding backward on its threaded path with column counts that do not fill whole
64-byte lines (each thread owns a block of columns) and heavily repeated ids, against a
float64 np.add.at; and dweight must come back zeroed where no id points."""
import numpy as np
import pytest

from fastnn.backends.numba import ops as O


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 17, 70, 257])
def test_embedding_backward_threaded_columns(dtype, cols):
    rng = np.random.default_rng(cols)
    n, vocab = max(4096, (1 << 17) // cols), 53
    ids = rng.integers(0, vocab - 3, n)          # the last 3 rows get no gradient
    dout = rng.standard_normal((n, cols)).astype(dtype)
    want = np.zeros((vocab, cols))
    np.add.at(want, ids, dout.astype(np.float64))
    got = O.embedding_backward(dout, ids, vocab)
    assert got.dtype == dtype and got.shape == (vocab, cols)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(n / vocab) * 4)
    assert not got[vocab - 3:].any()
    np.testing.assert_array_equal(O.embedding(got, ids[:5]), got[ids[:5]])
