"""The cuda GEMM's double buffering: inner dimensions of several k-slices (so the two shared
buffers swap more than once, with an odd and an even slice count and a partial last slice),
batches (the buffers restart for each batch entry) and both tile shapes' index paths. Runs on
Numba's CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1)."""
import dataclasses
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnn.kernels import dispatch  # noqa: E402

try:
    cu = dispatch.load("cuda")
except ImportError as e:
    pytest.skip(f"cuda backend unavailable: {e}", allow_module_level=True)

from fastnn.backends.cuda import common as cuda_common  # noqa: E402


def tiles(cfg, tile):
    return dataclasses.replace(cfg, gemm_tile=tile, gemm_tile_large=tile)


def reference(a, b, c, trans_a, trans_b, alpha, beta):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    a64 = a64.swapaxes(-1, -2) if trans_a else a64
    b64 = b64.swapaxes(-1, -2) if trans_b else b64
    return alpha * (a64 @ b64) + beta * c.astype(np.float64)


# (8, 8, 4, 4, 4): 4 threads, fewer than a slice row: the general index path.
# (16, 16, 4, 4, 4): 16 threads, a multiple of every slice width: the fixed-column path.
@pytest.mark.parametrize("tile", [(8, 8, 4, 4, 4), (16, 16, 4, 4, 4)])
@pytest.mark.parametrize("k", [11, 16])     # 3 slices, the last partial; 4 full slices
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_many_slices_batched(tile, k, dtype):
    rng = np.random.default_rng(k)
    for trans_a, trans_b in ((False, False), (True, True), (False, True), (True, False)):
        m, n, z = 10, 9, 2
        a = rng.standard_normal((z, k, m) if trans_a else (z, m, k)).astype(dtype)
        b = rng.standard_normal((z, n, k) if trans_b else (z, k, n)).astype(dtype)
        c = rng.standard_normal((z, m, n)).astype(dtype)
        want = reference(a, b, c, trans_a, trans_b, 0.5, 2.0)
        got = c.copy()
        with cuda_common.using_launch_config(tiles(cuda_common.SIM, tile)):
            cu.gemm_batched(a, b, got, trans_a, trans_b, 0.5, 2.0)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_gemm_gpu_tile_several_slices():
    # The real GPU's 64x64x16 tile (256 threads per block): K = 37 is three slices, the last
    # partial, so each thread prefetches twice and swaps buffers three times.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 37)).astype(np.float32)
    b = rng.standard_normal((37, 6)).astype(np.float32)
    c = np.full((5, 6), np.nan, np.float32)                 # beta = 0: c is never read
    with cuda_common.using_launch_config(tiles(cuda_common.GPU, cuda_common.GPU.gemm_tile)):
        cu.gemm(a, b, c, False, False, 1.0, 0.0)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
