"""The numba GEMM loads its micro-kernel on its own before any driver that calls it.

Each driver's library holds its own re-optimized copy of _tile_update as a weak symbol, and the
JIT linker resolves it to a definition it already holds; loaded from numba's cache without that
step, the drivers ran their own copy, 2-3x slower on AVX2 (see gemm._load_micro_kernel). These
tests check the step happens on every entry point, and that the results stay exact.
"""
import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif("numba" not in fastnn.available_backends(),
                                reason="numba backend unavailable")

if "numba" in fastnn.available_backends():
    from fastnn.backends.numba import conv as NC
    from fastnn.backends.numba import gemm as G

DTYPES = [np.float32, np.float64]


def _tile_update_dtypes():
    return {sig[2].dtype.name for sig in G._tile_update.signatures if sig[2].layout == "C"}


@pytest.fixture
def calls(monkeypatch):
    """Record _load_micro_kernel's calls (wherever it was imported) and clear its memo."""
    seen = []
    real = G._load_micro_kernel

    def spy(dtype, c_layout="C"):
        seen.append((np.dtype(dtype), c_layout))
        real(dtype, c_layout)
    monkeypatch.setattr(G, "_load_micro_kernel", spy)
    monkeypatch.setattr(NC, "_load_micro_kernel", spy)
    monkeypatch.setattr(G, "_micro_kernel_loaded", set())
    return seen


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_loads_micro_kernel_and_is_exact(calls, dtype):
    rng = np.random.default_rng(1)
    a = rng.integers(-3, 4, (37, 50)).astype(dtype)
    b = rng.integers(-3, 4, (50, 23)).astype(dtype)
    c = np.full((37, 23), 2, dtype)
    # numpy scalars for alpha and beta: the wrapper passes Python floats on (one signature)
    G.gemm(a, b, c, False, False, np.float32(2.0), np.float32(0.5))
    assert (np.dtype(dtype), "C") in calls
    assert np.dtype(dtype).name in _tile_update_dtypes()
    np.testing.assert_array_equal(c, 2 * (a.astype(np.float64) @ b).astype(dtype) + 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_loads_micro_kernel(calls, dtype):
    rng = np.random.default_rng(2)
    a = rng.integers(-3, 4, (3, 8, 9)).astype(dtype)
    b = rng.integers(-3, 4, (3, 9, 5)).astype(dtype)
    c = np.empty((3, 8, 5), dtype)
    G.gemm_batched(a, b, c, False, False, 1.0, 0.0)
    assert (np.dtype(dtype), "C") in calls
    np.testing.assert_array_equal(c, a @ b)


def test_non_contiguous_c_loads_its_layout(calls):
    c_big = np.zeros((6, 10), np.float32)
    G._load_for(c_big[:, :7])
    assert (np.dtype(np.float32), "C") in calls
    assert (np.dtype(np.float32), "A") in calls
    assert any(sig[2].layout == "A" for sig in G._tile_update.signatures)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_loads_micro_kernel_first(calls, dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (2, 3, 6, 6)).astype(dtype)
    w = rng.integers(-2, 3, (4, 3, 3, 3)).astype(dtype)
    y = NC.conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1, (6, 6))
    assert calls and calls[0] == (np.dtype(dtype), "C")
    want = fastnn.kernels.load("numpy").conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 1, (6, 6))
    np.testing.assert_array_equal(y, want)
    dy = rng.integers(-2, 3, y.shape).astype(dtype)
    calls.clear()
    NC.conv2d_backward(dy, x, w, (1, 1), (1, 1), (1, 1), 1, (True, True, True))
    assert calls and calls[0] == (np.dtype(dtype), "C")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,parts", [(131, 2), (131, 3), (9, 5)])
def test_row_blocks_equal_the_serial_gemm(dtype, m, parts):
    """The parallel row split gives every element of c the serial GEMM's sums, bit for bit,
    including a last block of fewer than MR rows and more parts than MR panels."""
    rng = np.random.default_rng(m + parts)
    a = rng.standard_normal((m, 70)).astype(dtype)
    for trans_b in (False, True):
        b = rng.standard_normal((45, 70) if trans_b else (70, 45)).astype(dtype)
        c0 = rng.standard_normal((m, 45)).astype(dtype)
        want, got = c0.copy(), c0.copy()
        G._load_micro_kernel(dtype)
        G._gemm_serial(a, b, want, False, trans_b, 0.5, 2.0)
        G._gemm_row_blocks(a, b, got, trans_b, 0.5, 2.0, parts)
        np.testing.assert_array_equal(got, want)
