"""Layer norm over the last axis, forward + backward
(PyTorch: aten.native_layer_norm and its backward)."""


def test_layer_norm(run_case, bench_case, impl):
    run_case(bench_case, impl)
