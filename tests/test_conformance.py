"""The registry-driven conformance suite: every declared kernel, on every backend, float32 and
float64, against the numpy reference; every backward kernel with a declared Gradient against
finite differences of its forward. A kernel declared in fastnn/kernels/ with `examples` is covered
here with no edit to this file.
"""
import copy

import numpy as np
import pytest

import fastnn
from fastnn.kernels import REGISTRY

from conftest import numeric_grad, skip_if_missing

WITH_EXAMPLES = [k for k in REGISTRY.values() if k.examples is not None]
WITH_GRADIENT = [k for k in REGISTRY.values() if k.gradient is not None]


def test_every_kernel_has_examples():
    # A declaration without examples would escape this suite.
    assert [k.name for k in REGISTRY.values() if k.examples is None] == []


def _as64(v):
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(np.float64)
    return v


def _outputs(result):
    return [np.asarray(r) for r in (result if isinstance(result, tuple) else (result,))]


@pytest.mark.parametrize("kernel", WITH_EXAMPLES, ids=lambda k: k.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference(backend, kernel, dtype):
    skip_if_missing(backend, kernel.name)
    rng = np.random.default_rng(sum(map(ord, kernel.name)))
    for args, kwargs in kernel.examples(rng, dtype):
        got_args = copy.deepcopy(args)   # in-place kernels (c, optimizer state) get fresh copies
        got = _outputs(kernel.api(*got_args, **kwargs, backend=backend))
        # The oracle runs in float64 on the same values: float32 formulas lose digits of their
        # own (gelu-tanh's backward cancels), and a kernel more exact than them must pass.
        want = _outputs(kernel.api(*[_as64(copy.deepcopy(a)) for a in args], **kwargs,
                                   backend="numpy"))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, (kernel.name, g.shape, w.shape)
            if w.dtype.kind == "f":
                assert g.dtype == dtype, (kernel.name, g.dtype)
                t = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4,
                                                                                    atol=2e-5)
                np.testing.assert_allclose(g, w, **t, err_msg=f"{kernel.name} {kwargs}")
            else:
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("kernel", WITH_GRADIENT, ids=lambda k: k.name)
def test_backward_matches_finite_differences(cpu_backend, kernel):
    """d/dx sum(forward(x) * dy) by central differences equals backward(dy, saved) in float64."""
    fwd = REGISTRY[kernel.gradient.forward]
    rng = np.random.default_rng(1)
    examples = [e for e in fwd.examples(rng, np.float64) if e[0][0].size <= 40]
    assert examples
    for (x, *rest), kwargs in examples:
        x = np.ascontiguousarray(x)
        dy = rng.standard_normal(x.shape)
        f = lambda: float(np.sum(fwd.api(x, *rest, **kwargs, backend="numpy") * dy))
        want = numeric_grad(f, x)
        saved = x if kernel.gradient.saved == "x" else fwd.api(x, *rest, **kwargs,
                                                               backend=cpu_backend)
        got = kernel.api(dy, saved, *rest, **kwargs, backend=cpu_backend)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{kernel.name} {kwargs}")
