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



# ---------------------------------------------------------------- fused epilogues
# act codes: 0 none, 1 relu, 2 gelu (tanh form), 3 gelu (exact erf)
def _activate(x, act):
    from . import ops
    if act == 1:
        return ops.relu(x)
    if act in (2, 3):
        return ops.gelu(x, act == 2)
    return x


def gemm_fused(a, b, c, trans_a, trans_b, alpha, beta, bias, act, residual, preact):
    # c = act(alpha * op(a) @ op(b) + beta * c + bias) + residual; preact = the value before act
    gemm(a, b, c, trans_a, trans_b, alpha, beta)
    if bias is not None:
        c += bias
    if preact is not None:
        preact[...] = c
    c[...] = _activate(c, act)
    if residual is not None:
        c += residual


def gemm_bias_grad(a, b, c, db, trans_a, trans_b, alpha, beta, sum_of_b):
    # c = alpha * op(a) @ op(b) + beta * c; db = alpha * (op(b) summed over k, per column, when
    # sum_of_b, else op(a) summed over k, per row) + beta * db
    gemm(a, b, c, trans_a, trans_b, alpha, beta)
    if sum_of_b:
        sums = (b.T if trans_b else b).sum(axis=0)
    else:
        sums = (a.T if trans_a else a).sum(axis=1)
    db[...] = alpha * sums if beta == 0 else alpha * sums + beta * db
