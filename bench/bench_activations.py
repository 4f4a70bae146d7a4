"""Elementwise activations, forward + backward (GELU in its tanh form, ReLU), and the per-call
overhead of a tiny kernel (relu on 8 elements) through fastnn.kernels and called directly."""


def test_gelu(run_case, bench_case, impl):
    run_case(bench_case, impl)


def test_relu(run_case, bench_case, impl):
    run_case(bench_case, impl)


def test_overhead(run_case, bench_case, impl):
    run_case(bench_case, impl)
