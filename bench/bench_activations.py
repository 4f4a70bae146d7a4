"""Elementwise kernels, forward + backward: one test_<kernel> for every kernel declared with
bench=Bench("unary", ...) (GELU in its tanh form, ReLU, ...), made below from the registry, so a new
one needs no edit here; and the per-call overhead of a tiny kernel (relu on 8 elements) through
fastnn.kernels and called directly."""
from fastnn.bench import families


def _make_test(name):
    def test(run_case, bench_case, impl):
        run_case(bench_case, impl)
    test.__name__ = test.__qualname__ = f"test_{name}"
    return test


for _family in families().values():
    if _family.kind == "unary":
        globals()[f"test_{_family.name}"] = _make_test(_family.name)


def test_overhead(run_case, bench_case, impl):
    run_case(bench_case, impl)
