"""Backend selection, thread control and `fastnn info`."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn.kernels import dispatch as backends
from fastnn.cli import main as cli_main


def test_numpy_reference_is_always_available():
    assert "numpy" in fastnn.available_backends()


def test_every_cpu_backend_implements_every_kernel():
    # A compiled backend that lacks a kernel would silently shrink the conformance suite.
    for name in ("numba", "cython"):
        if name in fastnn.available_backends():
            assert backends.load(name).missing() == [], name


def test_set_and_use_backend():
    before = fastnn.get_backend().name
    try:
        fastnn.set_backend("numpy")
        assert fastnn.get_backend().name == "numpy"
        for name in fastnn.available_backends():
            with fastnn.use_backend(name) as be:
                assert be.name == name == fastnn.get_backend().name
            assert fastnn.get_backend().name == "numpy"
    finally:
        fastnn.set_backend(before)


def test_use_backend_restores_after_an_exception():
    before = fastnn.get_backend().name
    with pytest.raises(RuntimeError):
        with fastnn.use_backend("numpy"):
            raise RuntimeError("boom")
    assert fastnn.get_backend().name == before


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'blas'"):
        fastnn.set_backend("blas")
    with pytest.raises(ValueError, match="unknown backend"):
        K.relu(np.ones(3), backend="blas")


def test_missing_kernel_raises_not_silently_falls_back():
    ops = type("ops", (), {"relu": staticmethod(lambda x: x)})
    be = backends.Backend("partial", type("partial", (), {"MODULES": (ops,)}))
    assert be.has("relu") and be.relu(3) == 3
    assert be.missing() and "gemm" in be.missing()
    with pytest.raises(NotImplementedError, match="'gemm' is not implemented by the 'partial'"):
        be.gemm(None, None, None, False, False, 1.0, 0.0)


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=300)


def test_default_is_fastest_available_and_env_var_selects():
    r = _run("import fastnn; print(fastnn.get_backend().name)")
    assert r.returncode == 0, r.stderr
    expected = next(b for b in ("cython", "numba", "numpy") if b in fastnn.available_backends())
    assert r.stdout.strip() == expected
    r = _run("import fastnn; print(fastnn.get_backend().name)", FASTNN_BACKEND="numpy")
    assert r.stdout.strip() == "numpy"
    r = _run("import fastnn; fastnn.get_backend()", FASTNN_BACKEND="nope")
    assert r.returncode != 0 and "unknown backend 'nope'" in r.stderr


def test_broken_compiled_backend_warns_with_reason_and_falls_back():
    code = ("import sys, warnings; sys.modules['fastnn.backends.cython'] = None\n"
            "import fastnn\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); name = fastnn.get_backend().name\n"
            "print(name); print([str(x.message) for x in w])")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    name, msgs = r.stdout.strip().splitlines()
    assert name != "cython"
    assert "backend 'cython' is unavailable" in msgs


def test_set_num_threads_governs_numba_and_openmp():
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        if "numba" in fastnn.available_backends():
            import numba
            assert numba.get_num_threads() == 1
        if "cython" in fastnn.available_backends():
            assert backends.load("cython").module.get_num_threads() == 1
        np.testing.assert_array_equal(K.relu(np.array([-1.0, 1.0])), [0.0, 1.0])
    finally:
        fastnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fastnn.set_num_threads(0)


def test_info_lists_backends_path_and_threads(capsys):
    assert cli_main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"fastnn {fastnn.__version__}" in out
    for name in ("numpy", "numba", "cython", "cuda"):
        assert f"  {name}" in out
    if "cython" in fastnn.available_backends():
        assert "cpu path: " in out
    assert "threads: " in out


def test_info_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "fastnn")
    if not os.path.exists(exe):
        pytest.skip("console script not installed in this environment")
    r = subprocess.run([exe, "info"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "backends:" in r.stdout, r.stderr


def test_cli_rejects_unknown_command_and_model(capsys):
    assert cli_main(["frobnicate"]) == 2
    assert cli_main(["train", "resnet"]) == 2
    assert "expected a model" in capsys.readouterr().err
