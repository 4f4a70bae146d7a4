"""Row kernels over the last axis: softmax forward, and cross-entropy (mean loss and dlogits)."""


def test_softmax(run_case, bench_case, impl):
    run_case(bench_case, impl)


def test_cross_entropy(run_case, bench_case, impl):
    run_case(bench_case, impl)
