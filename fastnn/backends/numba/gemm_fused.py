"""The GEMM's fused epilogues for the numba backend: its own gemm, then the epilogue as one more
pass over c (the C backend does it per tile; see csrc/gemm.h). Same semantics as the numpy
reference (fastnn/backends/numpy/gemm.py)."""
from . import ops
from .gemm import gemm


def gemm_fused(a, b, c, trans_a, trans_b, alpha, beta, bias, act, residual, preact):
    gemm(a, b, c, trans_a, trans_b, alpha, beta)
    if bias is not None:
        c += bias
    if preact is not None:
        preact[...] = c
    if act:
        flat = c.reshape(-1)
        pre = flat.copy()
        flat[...] = ops.relu(pre) if act == 1 else ops.gelu(pre, act == 2)
    if residual is not None:
        c += residual


def gemm_bias_grad(a, b, c, db, trans_a, trans_b, alpha, beta, sum_of_b):
    gemm(a, b, c, trans_a, trans_b, alpha, beta)
    if sum_of_b:
        sums = (b.T if trans_b else b).sum(axis=0)
    else:
        sums = (a.T if trans_a else a).sum(axis=1)
    db[...] = alpha * sums if beta == 0 else alpha * sums + beta * db
