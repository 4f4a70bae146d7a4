"""pytest-benchmark suite: the kernels and sizes of `fastnn bench`, one file per kernel family.

    pytest bench/ --benchmark-only                          # quick sizes, every backend + PyTorch
    pytest bench/ --benchmark-only --fastnn-sizes full      # the sizes of `fastnn bench --full`
    pytest bench/ --benchmark-only --benchmark-autosave     # save a run under .benchmarks/ ...
    pytest bench/ --benchmark-only --benchmark-compare      # ... and compare the next with it

Each test is one (case, implementation): naive numpy, each fastnn backend, PyTorch (skipped when
it is not installed) and, for GEMM, OpenBLAS. Tests of one case share a benchmark group, named
after the kernel and size, so pytest-benchmark prints them side by side. The cases themselves
(inputs, sizes, the PyTorch equivalents) come from fastnn/bench/cases.py, so both agree; its
families are the kernels declared with bench=Bench(...) (test_<family>; bench_activations.py
makes one for every "unary" kernel, so a new elementwise kernel needs no edit here).

The files are named bench_*.py so the main test run (pyproject's testpaths = ["tests"]) never
collects them; this conftest collects them when bench/ is named on the command line.
"""
import pytest

from fastnn.bench import IMPL_LABELS, cases, impls_for
from fastnn.kernels import dispatch


def pytest_addoption(parser):
    group = parser.getgroup("fastnn", "fastnn benchmark suite")
    group.addoption("--fastnn-sizes", default="quick", choices=("tiny", "quick", "full"),
                    help="case sizes, as `fastnn bench` (default quick; full = --full)")
    group.addoption("--fastnn-backends", default=None,
                    help="comma-separated fastnn backends (default: every available one but cuda)")
    group.addoption("--fastnn-dtype", default="float32", choices=("float32", "float64"))


def pytest_collect_file(file_path, parent):
    # a file named on the command line is collected by pytest itself; only add the others
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _backends(config):
    chosen = config.getoption("--fastnn-backends")
    if chosen:
        return [b.strip() for b in chosen.split(",") if b.strip()]
    return [b for b in dispatch.available_backends() if b != "cuda"]


def pytest_generate_tests(metafunc):
    """Parametrize each test_<family> over that family's cases x implementations."""
    if "bench_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    family = metafunc.definition.originalname.removeprefix("test_")
    family_cases = cases(family, config.getoption("--fastnn-sizes"),
                         config.getoption("--fastnn-dtype"))
    backends = _backends(config)
    params = []
    for case in family_cases:
        # torch is always listed, so a run without it shows the skip instead of hiding the column
        for impl in impls_for(case, backends, with_torch=True):
            params.append(pytest.param(case, impl, id=f"{case.id}-{impl}"))
    metafunc.parametrize(("bench_case", "impl"), params)


@pytest.fixture
def run_case(benchmark):
    """Time one implementation of one case; skip when the backend (or PyTorch) lacks it."""
    def run(case, impl):
        try:
            fn = case.build(impl)
        except ImportError as e:
            pytest.skip(str(e))
        try:
            fn()  # warm-up: compiles Numba code outside the timing
        except NotImplementedError as e:
            pytest.skip(f"n/a: {e}")
        benchmark.group = case.group
        benchmark.extra_info["impl"] = IMPL_LABELS.get(impl, impl)
        if case.flops:
            benchmark.extra_info["flops"] = case.flops
        benchmark(fn)
    return run
