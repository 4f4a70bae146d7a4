"""The vision kernels as `fastnn bench` times them: conv2d, 2x2 max pooling and batch norm
(training), each forward + backward, NCHW (cases in fastnn/bench/cases.py)."""


def test_conv2d(run_case, bench_case, impl):
    run_case(bench_case, impl)


def test_max_pool2d(run_case, bench_case, impl):
    run_case(bench_case, impl)


def test_batch_norm(run_case, bench_case, impl):
    run_case(bench_case, impl)
