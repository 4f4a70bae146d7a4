"""PyTorch's device modules for programs that ask about the hardware: fastnn.cuda,
fastnn.backends' flags, fastnn.accelerator, the float32-matmul-precision and determinism switches,
and fastnn.Generator (fastnn/random.py). Without a GPU they behave as PyTorch built for the CPU."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.accelerator as accelerator
import fastnn.backends as backends
import fastnn.cuda as cuda
from fastnn.errors import NoCudaError
from fastnn.random import Generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
no_gpu = pytest.mark.skipif(cuda.is_available(), reason="a GPU is available here")


def _python(code, **env):
    full = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("NUMBA_ENABLE_CUDASIM", cuda.SIMULATOR_AS_DEVICE):
        full.pop(k, None)
    full.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env=full, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---------------------------------------------------------------- fastnn.cuda
@no_gpu
def test_cuda_without_a_gpu_behaves_as_pytorch_on_the_cpu():
    assert cuda.is_available() is False and cuda.device_count() == 0
    assert cuda.is_initialized() is False and cuda.is_bf16_supported() is False
    for fn in (cuda.memory_allocated, cuda.max_memory_allocated, cuda.memory_reserved,
               cuda.max_memory_reserved):
        assert fn() == 0 and fn(0) == 0
    assert cuda.memory_stats() == {}
    cuda.synchronize()
    cuda.empty_cache()
    cuda.reset_peak_memory_stats()
    for call in (cuda.get_device_name, lambda: cuda.get_device_name(0), cuda.current_device,
                 cuda.get_device_capability, cuda.get_device_properties, cuda.initial_seed,
                 cuda.mem_get_info, cuda.init, lambda: cuda.set_device(0)):
        with pytest.raises(NoCudaError, match="no CUDA GPU is available"):
            call()
    with pytest.raises(AssertionError):   # PyTorch's "Torch not compiled with CUDA enabled"
        cuda.get_device_name()
    with pytest.raises(RuntimeError):
        cuda.current_device()
    with pytest.raises(NoCudaError):
        with cuda.device(0):
            pass
    with cuda.device(-1):   # PyTorch: a negative index selects nothing
        pass
    assert isinstance(cuda.unavailable_reason(), str)


def test_cuda_seeding_leaves_the_cpu_generator_alone():
    fastnn.manual_seed(0)
    a = fastnn.randn(4).numpy()
    fastnn.manual_seed(0)
    cuda.manual_seed(123)
    cuda.manual_seed_all(7)
    cuda.seed()
    cuda.seed_all()
    np.testing.assert_array_equal(fastnn.randn(4).numpy(), a)


@no_gpu
def test_accelerator_without_a_gpu():
    assert accelerator.is_available() is False
    assert accelerator.current_accelerator() is None
    assert accelerator.current_accelerator(check_available=True) is None
    assert accelerator.device_count() == 0
    accelerator.synchronize()
    with accelerator.device_index(None):
        pass
    with pytest.raises(NoCudaError):
        accelerator.current_device_index()
    # the idiom of PyTorch's examples
    device = accelerator.current_accelerator() or fastnn.device("cpu")
    assert fastnn.zeros(2, device=device).device == fastnn.device("cpu")


@no_gpu
def test_no_driver_means_no_numba_cuda_import():
    if cuda._driver_present():
        pytest.skip("an NVIDIA driver is installed here")
    out = _python("import sys, fastnn.cuda as c; print(c.is_available(), c.device_count(), "
                  "'numba.cuda' in sys.modules)")
    assert out.split() == ["False", "0", "False"]


def test_the_simulator_is_a_device_only_when_asked():
    code = ("import fastnn, fastnn.cuda as c, fastnn.accelerator as a\n"
            "print(c.is_available(), c.device_count(), a.current_accelerator())\n")
    assert _python(code, NUMBA_ENABLE_CUDASIM="1").split() == ["False", "0", "None"]
    code += ("print(c.get_device_name(0)); print(c.current_device(), c.get_device_capability())\n"
             "c.synchronize(); c.manual_seed_all(5); print(c.initial_seed())\n"
             "with c.device(0): print(c.current_device())\n")
    out = _python(code, NUMBA_ENABLE_CUDASIM="1", FASTNN_CUDA_SIMULATOR_AS_DEVICE="1")
    lines = out.splitlines()
    assert lines[0] == "True 1 cuda"
    assert lines[1] == "Numba CUDA simulator"
    assert lines[2].startswith("0 (") and lines[3] == "5" and lines[4] == "0"


def test_amp_helpers_are_pass_through():
    with pytest.warns(UserWarning, match="Disabling"):
        scaler = cuda.GradScaler()
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0
    scaler = cuda.amp.GradScaler(enabled=False)
    w = fastnn.tensor([1.0, 2.0], requires_grad=True)
    opt = fastnn.optim.SGD([w], lr=0.5)
    loss = (w * w).sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(w.detach().numpy(), [0.0, 0.0])
    with cuda.amp.autocast(enabled=False):
        pass
    with cuda.autocast("cpu", dtype=fastnn.float32):
        pass

    @cuda.autocast("cpu")
    def f(x):
        return x + 1
    assert f(1) == 2


# ---------------------------------------------------------------- fastnn.backends flags
def test_backends_flags_programs_set():
    saved = (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cudnn.enabled,
             backends.get_float32_matmul_precision())
    try:
        backends.cudnn.benchmark = True
        backends.cudnn.deterministic = True
        backends.cudnn.enabled = False
        backends.cudnn.allow_tf32 = False
        assert backends.cudnn.benchmark and backends.cudnn.deterministic
        assert not backends.cudnn.enabled
        assert backends.cudnn.is_available() is False and backends.cudnn.version() is None
        with backends.cudnn.flags(enabled=True, benchmark=False):
            assert backends.cudnn.enabled and not backends.cudnn.benchmark
        assert not backends.cudnn.enabled and backends.cudnn.benchmark
        backends.cuda.matmul.allow_tf32 = True       # the same switch as the precision
        assert backends.get_float32_matmul_precision() == "high"
        backends.set_float32_matmul_precision("highest")
        assert backends.cuda.matmul.allow_tf32 is False
        backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        backends.cuda.enable_flash_sdp(False)
        assert backends.cuda.flash_sdp_enabled() is False and backends.cuda.math_sdp_enabled()
        backends.cuda.enable_flash_sdp(True)
        assert backends.mps.is_available() is False and backends.mps.is_built() is False
        assert backends.mkldnn.is_available() is False and backends.mkl.is_available() is False
        assert backends.openmp.is_available() is True
        assert "benchmark=True" in repr(backends.cudnn)
    finally:
        (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cudnn.enabled,
         precision) = saved
        backends.cudnn.allow_tf32 = True
        backends.set_float32_matmul_precision(precision)


def test_backends_cuda_flags_survive_the_kernels_package():
    """fastnn.backends.cuda is both the flags and the cuda kernels' package: importing the
    package keeps the flags, and its names are reached through them."""
    pytest.importorskip("numba.cuda")
    import fastnn.backends.cuda as cu   # binds the package to the name `cuda`
    from fastnn.backends.cuda import common
    assert fastnn.backends.cuda is cu and hasattr(cu, "matmul")
    assert cu.NAME == "cuda" and cu.MODULES and callable(cu.device_kernel)
    assert common is sys.modules["fastnn.backends.cuda.common"]
    from fastnn.kernels import dispatch
    assert "cuda" in dispatch.backend_names()
    with pytest.raises(AttributeError):
        fastnn.backends.cuda = 3


def test_backends_package_imports_nothing_from_fastnn():
    import ast
    src = open(backends.__file__, encoding="utf-8").read()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("fastnn"), node.module
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("fastnn") for a in node.names)


def test_float32_matmul_precision_and_determinism_switches():
    before = backends.get_float32_matmul_precision()
    try:
        for p in ("high", "medium", "highest"):
            backends.set_float32_matmul_precision(p)
            assert backends.get_float32_matmul_precision() == p
        with pytest.warns(UserWarning, match="has no effect"):
            backends.set_float32_matmul_precision("low")       # as PyTorch: warns, ignored
        assert backends.get_float32_matmul_precision() == "highest"
    finally:
        backends.set_float32_matmul_precision(before)
    try:
        backends.use_deterministic_algorithms(True, warn_only=True)
        assert backends.are_deterministic_algorithms_enabled()
        assert backends.is_deterministic_algorithms_warn_only_enabled()
        with pytest.raises(TypeError):
            backends.use_deterministic_algorithms("yes")
    finally:
        backends.use_deterministic_algorithms(False)
    assert not backends.are_deterministic_algorithms_enabled()


# ---------------------------------------------------------------- fastnn.Generator
def test_generator_seeds_like_manual_seed():
    g = Generator()
    assert g.manual_seed(0) is g and g.initial_seed() == 0 and g.device == fastnn.device("cpu")
    a = fastnn.randn(5, generator=g).numpy()
    fastnn.manual_seed(0)
    np.testing.assert_array_equal(a, fastnn.randn(5).numpy())
    g2 = Generator().manual_seed(0)
    np.testing.assert_array_equal(fastnn.randn(5, generator=g2).numpy(), a)
    assert Generator().initial_seed() == 67280421310721     # PyTorch's default seed
    assert Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1
    s = g.seed()
    assert isinstance(s, int) and g.initial_seed() == s


def test_generator_state_round_trip_and_reseed_in_place():
    g = Generator().manual_seed(3)
    state = g.get_state()
    assert state.dtype == fastnn.uint8 and state.dim() == 1
    a = fastnn.rand(4, generator=g).numpy()
    b = fastnn.rand(4, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(fastnn.rand(4, generator=g).numpy(), a)
    other = Generator().set_state(state)
    fastnn.rand(4, generator=other)
    np.testing.assert_array_equal(fastnn.rand(4, generator=other).numpy(), b)
    inner = g._rng          # what a sampler holding this generator keeps
    g.manual_seed(3)
    assert g._rng is inner
    np.testing.assert_array_equal(inner.random(4, dtype=np.float32), a)
    with pytest.raises(RuntimeError, match="RNG state size to be 3"):   # PyTorch's message
        g.set_state(fastnn.tensor([1, 2, 3], dtype=fastnn.uint8))
    assert g.clone_state().get_state().numpy().tobytes() == g.get_state().numpy().tobytes()


def test_generator_drives_sampling_and_data_loading():
    perm = fastnn.randperm(10, generator=Generator().manual_seed(1)).tolist()
    assert perm == fastnn.randperm(10, generator=Generator().manual_seed(1)).tolist()
    ints = fastnn.randint(0, 100, (6,), generator=Generator().manual_seed(2)).tolist()
    assert ints == fastnn.randint(0, 100, (6,), generator=Generator().manual_seed(2)).tolist()
    from fastnn.utils.data import DataLoader, TensorDataset
    data = TensorDataset(fastnn.arange(20))

    def order(seed):
        loader = DataLoader(data, batch_size=5, shuffle=True,
                            generator=Generator().manual_seed(seed))
        return [int(v) for (batch,) in loader for v in batch.tolist()]
    assert order(0) == order(0) and sorted(order(0)) == list(range(20))
    assert order(0) != order(1)


def test_generator_devices():
    with pytest.raises(RuntimeError, match="MPS is not supported"):
        Generator("mps")
    if not cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            Generator("cuda")
    assert Generator(fastnn.device("cpu")).device.type == "cpu"


def test_global_generator_functions():
    import fastnn.random as frandom
    assert frandom.manual_seed(5) is frandom.default_generator
    assert frandom.initial_seed() == 5
    a = fastnn.rand(3).numpy()
    frandom.manual_seed(5)
    state = frandom.get_rng_state()
    np.testing.assert_array_equal(fastnn.rand(3).numpy(), a)
    frandom.set_rng_state(state)
    with frandom.fork_rng():
        fastnn.rand(100)
    np.testing.assert_array_equal(fastnn.rand(3).numpy(), a)
    np.testing.assert_array_equal(
        fastnn.rand(3, generator=frandom.default_generator.manual_seed(5)).numpy(), a)
    assert frandom.default_generator() is frandom.default_generator._rng  # as the function


# ---------------------------------------------------------------- against PyTorch
def test_the_names_programs_use_exist_as_in_pytorch():
    torch = pytest.importorskip("torch")
    pairs = [(torch.cuda, cuda), (torch.backends.cudnn, backends.cudnn),
             (torch.backends.cuda, backends.cuda), (torch.backends.cuda.matmul,
                                                    backends.cuda.matmul),
             (torch.backends.mps, backends.mps), (torch.backends.mkldnn, backends.mkldnn),
             (torch.backends.openmp, backends.openmp), (torch.accelerator, accelerator)]
    names = {
        0: ["is_available", "device_count", "manual_seed", "manual_seed_all", "seed", "seed_all",
            "synchronize", "get_device_name", "current_device", "set_device", "device",
            "memory_allocated", "max_memory_allocated", "memory_reserved", "empty_cache",
            "is_bf16_supported", "reset_peak_memory_stats", "get_device_properties",
            "get_device_capability", "initial_seed", "mem_get_info", "amp"],
        1: ["enabled", "benchmark", "deterministic", "allow_tf32", "is_available", "version",
            "flags"],
        2: ["matmul", "is_built", "enable_flash_sdp", "flash_sdp_enabled", "enable_math_sdp",
            "math_sdp_enabled", "enable_mem_efficient_sdp", "mem_efficient_sdp_enabled"],
        3: ["allow_tf32", "allow_fp16_reduced_precision_reduction"],
        4: ["is_available", "is_built"], 5: ["is_available", "enabled"], 6: ["is_available"],
        7: ["is_available", "current_accelerator", "device_count", "synchronize"],
    }
    for i, (theirs, ours) in enumerate(pairs):
        for name in names[i]:
            if hasattr(theirs, name):
                assert hasattr(ours, name), f"{getattr(theirs, '__name__', theirs)}.{name}"
    if not torch.cuda.is_available() and not cuda.is_available():
        assert cuda.device_count() == torch.cuda.device_count() == 0
        assert cuda.memory_allocated() == torch.cuda.memory_allocated() == 0
        assert backends.mps.is_available() == torch.backends.mps.is_available()
        assert (accelerator.current_accelerator() is None) == \
            (torch.accelerator.current_accelerator() is None)
    assert Generator().initial_seed() == torch.Generator().initial_seed()
    assert backends.cudnn.benchmark == torch.backends.cudnn.benchmark
    assert backends.cudnn.deterministic == torch.backends.cudnn.deterministic
    assert backends.get_float32_matmul_precision() == torch.get_float32_matmul_precision()


def test_top_level_names():
    """`import fastnn as torch` programs reach these as torch.<name>, after `import fastnn`
    alone (a fresh interpreter)."""
    out = _python(
        "import fastnn\n"
        "if not hasattr(fastnn, 'accelerator'):\n"
        "    print('not yet'); raise SystemExit\n"
        "import fastnn.backends as b, fastnn.random as r\n"
        "assert fastnn.cuda.is_available() in (True, False)\n"
        "assert fastnn.accelerator.is_available() in (True, False)\n"
        "assert fastnn.Generator is r.Generator and fastnn.get_rng_state is r.get_rng_state\n"
        "for n in ('set_float32_matmul_precision', 'get_float32_matmul_precision',\n"
        "          'use_deterministic_algorithms', 'are_deterministic_algorithms_enabled'):\n"
        "    assert getattr(fastnn, n) is getattr(b, n), n\n"
        "fastnn.backends.cudnn.benchmark = True\n"
        "print('ok')\n")
    if out.strip() == "not yet":
        pytest.skip("fastnn/__init__.py does not import the device modules yet")
    assert out.strip() == "ok"
