"""The C convolution's path for small images (several images side by side in one GEMM, im2col
and col2im through zero-padded copies; csrc/conv_impl.h im2col_group): forward and backward
against the numpy reference over the geometries that path must handle: stride, dilation,
groups, asymmetric 'same' padding, padding wider than the kernel, odd sizes, 1-pixel images."""
import numpy as np
import pytest

from fastnn import kernels as K

pytest.importorskip("fastnn.backends.cython._conv")

# (n, c, h, w, co, kh, kw, stride, padding, dilation, groups): every output map is under the
# 512 columns at which the C kernel stops grouping images
CASES = [
    (32, 1, 8, 8, 32, 3, 3, 1, 1, 1, 1),       # the digits CNN's stages
    (32, 32, 4, 4, 64, 3, 3, 1, 1, 1, 1),
    (32, 64, 2, 2, 128, 3, 3, 1, 1, 1, 1),
    (5, 3, 7, 5, 4, 3, 2, 2, (2, 1), 1, 1),    # stride 2, rectangular, uneven batch
    (6, 4, 6, 6, 6, 3, 3, 1, 2, 2, 2),         # dilation 2, groups 2
    (3, 2, 5, 6, 3, 2, 2, 1, "same", 1, 1),    # even kernel: PyTorch pads the extra row below
    (4, 2, 1, 1, 3, 3, 3, 1, 3, 1, 1),         # padding wider than the kernel reaches
    (7, 3, 3, 4, 5, 1, 1, 1, 0, 1, 1),         # 1x1
    (9, 6, 5, 5, 6, 3, 3, 3, 1, 1, 3),         # stride 3, groups 3
    (33, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1),        # 32 images to a GEMM, then one alone
    (65, 4, 4, 4, 6, 3, 3, 1, 1, 1, 2),        # the same with groups
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_images_match_reference(case, dtype):
    n, c, h, w, co, kh, kw, stride, padding, dilation, groups = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((co, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    want = K.conv2d(x, wt, b, **args, backend="numpy")
    got = K.conv2d(x, wt, b, **args, backend="cython")
    np.testing.assert_allclose(got, want, **tol)
    dy = rng.standard_normal(want.shape).astype(dtype)
    want_g = K.conv2d_backward(dy, x, wt, **args, backend="numpy")
    got_g = K.conv2d_backward(dy, x, wt, **args, backend="cython")
    for name, g, r in zip(("dx", "dw", "db"), got_g, want_g):
        np.testing.assert_allclose(g, r, err_msg=name, **tol)


def test_small_images_results_do_not_depend_on_threads():
    """The grouped path under 1 and 2 threads: the same bits (fixed summation order)."""
    import fastnn
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 32, 4, 4)).astype(np.float32)
    wt = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((32, 64, 4, 4)).astype(np.float32)
    before = fastnn.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            fastnn.set_num_threads(t)
            out.append((K.conv2d(x, wt, None, padding=1, backend="cython"),)
                       + tuple(K.conv2d_backward(dy, x, wt, padding=1, backend="cython")))
    finally:
        fastnn.set_num_threads(before)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
