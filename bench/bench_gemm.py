"""GEMM, c = op(a) @ op(b): each backend vs naive numpy, OpenBLAS (numpy's a @ b) and torch.matmul.

--fastnn-sizes full adds n=2048 and the transformer's shapes in the NN/NT/TN cases of backprop.
"""


def test_gemm(run_case, bench_case, impl):
    run_case(bench_case, impl)
