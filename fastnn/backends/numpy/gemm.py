"""Reference GEMM: plain numpy, the oracle for every GEMM kernel (see fastnn/kernels/gemm.py)."""

# ---------------------------------------------------------------- GEMM
# c = alpha * op(a) @ op(b) + beta * c, op(x) = x.T when trans_x; c is written in place.
# As in BLAS, when beta == 0 the old contents of c are not read (NaN there does not propagate).
def gemm(a, b, c, trans_a, trans_b, alpha, beta):
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    prod = (a @ b) * alpha
    if beta == 0:
        c[...] = prod
    else:
        c[...] = prod + beta * c


def gemm_batched(a, b, c, trans_a, trans_b, alpha, beta):
    # a: (B, M, K) or (B, K, M); b: (B, K, N) or (B, N, K); c: (B, M, N)
    for i in range(c.shape[0]):
        gemm(a[i], b[i], c[i], trans_a, trans_b, alpha, beta)

