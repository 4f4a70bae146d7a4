"""fastnn's random streams are PyTorch's CPU streams, bit for bit (fastnn/_torch_rng.py).

After fastnn.manual_seed(s) and torch.manual_seed(s) (or the same seed on a Generator), every
random function draws the same values, leaves the generator in the same state (the 5056 bytes of
get_rng_state), and every layer initialises to the same parameters. The torch-free tests check
values recorded from torch 2.13 on this project's AVX2 machine, the numpy and numba paths against
each other, and the error messages; the rest compare against torch where it is installed.
"""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from fastnn import _torch_rng as R
from fastnn.utils.data import DataLoader, TensorDataset, random_split


def _bits(a):
    return np.asarray(a).view(np.uint32 if np.asarray(a).dtype == np.float32 else np.uint64)


# ---------------------------------------------------------------- torch-free: recorded values
def test_recorded_values_after_manual_seed_0():
    """Values torch 2.13 gives after torch.manual_seed(0) (float32 bit patterns)."""
    fastnn.manual_seed(0)
    assert _bits(fastnn.rand(4).numpy()).tolist() == [1056839000, 1061464623, 1035285416,
                                                      1040659200]
    fastnn.manual_seed(0)
    assert fastnn.randint(0, 10, (8,)).tolist() == [4, 9, 3, 0, 3, 9, 7, 3]
    fastnn.manual_seed(0)
    assert fastnn.randperm(10).tolist() == [4, 1, 7, 5, 3, 9, 0, 8, 6, 2]
    fastnn.manual_seed(0)
    assert fastnn.rand(2, dtype=fastnn.float64).numpy().tolist() == [0.9700530018065531,
                                                                     0.707819864399788]
    fastnn.manual_seed(0)   # fewer than 16: the scalar Box-Muller, its second value cached
    assert _bits(fastnn.randn(3).numpy()).tolist() == [1069891420, 3197516880, 3221975369]


@pytest.mark.skipif(not R.AVX2, reason="PyTorch computes a float32 randn of >= 16 values "
                    "differently without its AVX2 kernels; these values are AVX2's")
def test_recorded_block_normals_and_linear_init():
    fastnn.manual_seed(0)
    x = fastnn.randn(20).numpy()
    assert _bits(x[[0, 7, 8, 15, 19]]).tolist() == [3213892485, 1072508750, 1055894101,
                                                    3210214195, 1029446458]
    fastnn.manual_seed(0)
    lin = nn.Linear(3, 2)
    assert _bits(lin.weight.detach().numpy()).ravel().tolist() == [
        3146621928, 1050579731, 3203615614, 3201928137, 3194205361, 1042188627]
    assert _bits(lin.bias.detach().numpy()).tolist() == [3158010688, 1055547770]


def test_default_seed_state_layout_and_round_trip():
    g = fastnn.Generator()
    assert g.initial_seed() == 67280421310721 == R.DEFAULT_SEED
    state = g.get_state().numpy()
    assert state.dtype == np.uint8 and state.shape == (5056,)
    seed, left, seeded, nxt = np.frombuffer(state[:24].tobytes(), "<u8,<i4,<i4,<u8")[0]
    assert (seed, left, seeded, nxt) == (67280421310721, 1, 1, 0)   # PyTorch's fresh engine
    fastnn.rand(10, generator=g)
    seed, left, seeded, nxt = np.frombuffer(g.get_state().numpy()[:24].tobytes(),
                                            "<u8,<i4,<i4,<u8")[0]
    assert (left, nxt) == (615, 10)
    # a cached Box-Muller value travels with the state (normal_y, normal_is_valid)
    fastnn.randn(3, generator=g)
    saved = g.get_state()
    a = fastnn.randn(5, generator=g).numpy()
    g.set_state(saved)
    np.testing.assert_array_equal(fastnn.randn(5, generator=g).numpy(), a)
    with pytest.raises(RuntimeError, match="RNG state size to be 7"):
        g.set_state(fastnn.zeros(7, dtype=fastnn.uint8))
    bad = bytearray(saved.numpy().tobytes())
    bad[12] = 0    # seeded = false
    with pytest.raises(RuntimeError, match="RNG state is invalid"):
        g.set_state(bytes(bad))


def test_global_generator_reseeds_in_place_and_fork_rng():
    eng = fastnn.default_generator()
    fastnn.manual_seed(5)
    assert fastnn.default_generator() is eng and fastnn.initial_seed() == 5
    a = fastnn.rand(3).numpy()
    with fastnn.random.fork_rng():
        fastnn.rand(100)
    b = fastnn.rand(3).numpy()
    fastnn.manual_seed(5)
    np.testing.assert_array_equal(fastnn.rand(6).numpy(), np.concatenate([a, b]))
    fastnn.manual_seed(-1)
    assert fastnn.initial_seed() == 2 ** 64 - 1


def test_numba_and_numpy_paths_give_the_same_bits(monkeypatch):
    n = 3 * 16 * 1024 + 5
    monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 14)     # numba for these sizes (when it loads)
    for mean, std in ((0.0, 1.0), (0.25, 0.02)):
        g = R.TorchGenerator(11)
        fast = g.normal_fill(n, np.float32, mean, std)
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 62)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 62)
        g.manual_seed(11)
        slow = g.normal_fill(n, np.float32, mean, std)
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 14)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 14)
        np.testing.assert_array_equal(_bits(fast), _bits(slow))
    g = R.TorchGenerator(3)
    u = g.uniform_fill(1 << 15)
    monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 62)
    monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 62)
    g.manual_seed(3)
    np.testing.assert_array_equal(u, g.uniform_fill(1 << 15))
    draws = [lambda g: g.randperm(40000), lambda g: g.uniform_fill(40000, np.float32, -0.1, 0.1),
             lambda g: g.uniform_fill(40000, np.float64), lambda g: g.bernoulli_scalar(40000, .3),
             lambda g: g.uniform_fill(40000, np.float64, -3.3, 1.7),
             lambda g: g.integers_from_to(40000, -7, 1000)]
    for draw in draws:
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 14)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 14)
        fast = draw(g.manual_seed(5))
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 62)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 62)
        slow = draw(g.manual_seed(5))
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast.view(np.uint8), slow.view(np.uint8))
    # PyTorch's portable float32 Box-Muller (its AVX-512 and default builds): libm through
    # ctypes for small arrays, a numba loop for large ones
    monkeypatch.setattr(R, "AVX2", False)
    for m, sd in ((0.0, 1.0), (0.25, 0.02)):
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 14)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 14)
        fast = g.manual_seed(8).normal_fill(20000, np.float32, m, sd)
        monkeypatch.setattr(R, "_NUMBA_FROM", 1 << 62)
        monkeypatch.setattr(R, "_NUMBA_WARM_FROM", 1 << 62)
        np.testing.assert_array_equal(_bits(g.manual_seed(8).normal_fill(20000, np.float32, m,
                                                                         sd)), _bits(fast))
    monkeypatch.setattr(R, "AVX2", True)
    # the end points of the log: u = 0 (log 1) and u = 1 - 2^-24 (the smallest 1 - u)
    edge = np.zeros(32, np.float32)
    edge[16:24] = 1 - np.float32(2 ** -24)
    edge[24:] = 0.5
    a = R._box_muller16_f32(edge.reshape(2, 16), 0.0, 1.0).ravel()
    kernels = R._numba(1 << 62, "box_muller16_f32")
    if kernels is not None:
        b = edge.copy()
        kernels.box_muller16_f32(b, np.float32(0), np.float32(1))
        np.testing.assert_array_equal(_bits(a), _bits(b))
    assert np.isfinite(a).all() and a[0] == 0 and abs(a[16]) > 5.6


def test_fma32_rounds_once_where_float64_would_round_twice():
    """a*b + c with the float64 sum exactly halfway between two float32s: the exact value lies
    below, so the correctly rounded result is the lower float32 (ties-to-even would go up)."""
    r = np.arange(1, 200, dtype=np.float64)
    a = (1 + r * 2.0 ** -23).astype(np.float32)
    b = (2.0 ** -24 * (1 - r * 2.0 ** -23)).astype(np.float32)
    c = np.float32(1 + 2.0 ** -23)
    got = R._fma32(a, b, c)
    assert (got == c).all()
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    assert (naive != c).all()      # the case the correction is for
    if R._numba(1 << 62, "fmaf") is not None:
        from fastnn.backends.numba.torch_rng import fmaf
        from numba import njit

        @njit
        def hw(x, y, z):
            out = np.empty_like(x)
            for i in range(x.size):
                out[i] = fmaf(x[i], y[i], z)
            return out
        np.testing.assert_array_equal(hw(a, b, c), got)


def test_numpy_generator_interface_for_internal_users():
    g = fastnn.default_generator()
    fastnn.manual_seed(1)
    x = g.random((2, 3))
    assert x.shape == (2, 3) and x.dtype == np.float64 and ((0 <= x) & (x < 1)).all()
    assert isinstance(g.random(), float)
    assert g.standard_normal(4, dtype=np.float32).dtype == np.float32
    i = g.integers(0, 5, size=100)
    assert i.min() >= 0 and i.max() <= 4 and isinstance(g.integers(7), int)
    assert sorted(g.permutation(6).tolist()) == list(range(6))
    arr = np.arange(10)
    g.shuffle(arr)
    assert sorted(arr.tolist()) == list(range(10))
    assert g.choice(["a", "b"]) in ("a", "b")
    c = g.choice(4, size=2000, p=[0.1, 0.0, 0.6, 0.3])
    assert 1 not in c and abs((c == 2).mean() - 0.6) < 0.05
    assert len(set(g.choice(10, size=10, replace=False).tolist())) == 10
    state = g.bit_generator.state
    a = g.normal(1.0, 2.0, 5)
    g.bit_generator.state = state
    np.testing.assert_array_equal(g.normal(1.0, 2.0, 5), a)
    with pytest.raises(ValueError, match="bit_generator.state"):
        g.bit_generator.state = "nonsense"
    with pytest.warns(UserWarning, match="reseeded"):   # an old checkpoint's numpy state
        g.bit_generator.state = np.random.default_rng(0).bit_generator.state
    first = g.random(3)
    with pytest.warns(UserWarning):
        g.bit_generator.state = np.random.default_rng(0).bit_generator.state
    np.testing.assert_array_equal(g.random(3), first)
    # a numpy Generator still works as generator= (numpy's own stream)
    assert fastnn.rand(3, generator=np.random.default_rng(0)).shape == (3,)


def test_bad_arguments_raise_pytorch_errors():
    t = fastnn.empty(4)
    with pytest.raises(RuntimeError, match="from=1.0 > to=0.0"):
        t.uniform_(1.0, 0.0)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        t.normal_(0.0, -1.0)
    with pytest.raises(RuntimeError, match="p to be in"):
        t.bernoulli_(1.5)
    with pytest.raises(RuntimeError, match="lambda > 0.0"):
        t.exponential_(0.0)
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        fastnn.randint(5, 5, (3,))
    with pytest.raises(RuntimeError, match="n must be non-negative"):
        fastnn.randperm(-1)
    with pytest.raises(RuntimeError, match="sum of probabilities"):
        fastnn.multinomial(fastnn.zeros(3), 1)
    with pytest.raises(NotImplementedError, match="floating point"):
        fastnn.zeros(3, dtype=fastnn.int64).normal_()
    with pytest.raises(TypeError, match="manual_seed expected an int"):
        fastnn.manual_seed("x")


# ---------------------------------------------------------------- against torch
torch = None


@pytest.fixture(scope="module")
def T():
    global torch
    torch = pytest.importorskip("torch")
    return torch


def _same(t_fn, f_fn, seed, T):
    """Run both with the same seed: equal values (bits, dtype, shape) and equal states."""
    T.manual_seed(seed)
    a = t_fn(T)
    fastnn.manual_seed(seed)
    b = f_fn(fastnn)
    a = a.numpy() if hasattr(a, "numpy") else np.asarray(a)
    b = b.numpy() if hasattr(b, "numpy") else np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    assert T.get_rng_state().numpy().tobytes() == fastnn.get_rng_state().numpy().tobytes()


SIZES = [1, 2, 3, 15, 16, 17, 31, 33, 100, 1000, 20011]
CASES = {
    "rand": lambda L, n: L.rand(n),
    "rand_f64": lambda L, n: L.rand(n, dtype=L.float64),
    "randn": lambda L, n: L.randn(n),
    "randn_f64": lambda L, n: L.randn(n, dtype=L.float64),
    "randn_2d": lambda L, n: L.randn(n, 3),
    "uniform_bounds": lambda L, n: L.empty(n).uniform_(-0.088388, 0.088388),
    "uniform_f64": lambda L, n: L.empty(n, dtype=L.float64).uniform_(2.0, 5.5),
    "normal_mean_std": lambda L, n: L.empty(n).normal_(0.3, 0.02),
    "normal_f64_mean_std": lambda L, n: L.empty(n, dtype=L.float64).normal_(-1.5, 3.0),
    "normal_floats": lambda L, n: L.normal(2.0, 0.5, size=(n,)),
    "normal_tensor_std": lambda L, n: L.normal(L.zeros(n) + 1.0, L.ones(n) * 0.3),
    "normal_tensor_mean": lambda L, n: L.normal(L.arange(n, dtype=L.float32), 2.0),
    "randint": lambda L, n: L.randint(0, 10, (n,)),
    "randint_neg": lambda L, n: L.randint(-7, 3, (n,)),
    "randint_big": lambda L, n: L.randint(-5, 2 ** 30, (n,)),
    "randint_int32": lambda L, n: L.randint(0, 100, (n,), dtype=L.int32),
    "random_int64": lambda L, n: L.empty(n, dtype=L.int64).random_(),
    "random_f32": lambda L, n: L.empty(n).random_(),
    "random_uint8": lambda L, n: L.empty(n, dtype=L.uint8).random_(),
    "random_to": lambda L, n: L.empty(n, dtype=L.int64).random_(7),
    "random_from_to": lambda L, n: L.empty(n).random_(3, 9),
    "randperm": lambda L, n: L.randperm(n),
    "bernoulli_scalar": lambda L, n: L.empty(n).bernoulli_(0.3),
    "bernoulli_tensor": lambda L, n: L.bernoulli(L.linspace(0, 1, n)),
    "bernoulli_f64": lambda L, n: L.bernoulli(L.linspace(0, 1, n, dtype=L.float64)),
    "exponential": lambda L, n: L.empty(n).exponential_(2.0),
    "cauchy_f64": lambda L, n: L.empty(n, dtype=L.float64).cauchy_(0.5, 2.0),
    "geometric": lambda L, n: L.empty(n).geometric_(0.3),
    "log_normal_f64": lambda L, n: L.empty(n, dtype=L.float64).log_normal_(0.5, 0.25),
    "bernoulli_inplace_p": lambda L, n: L.empty(n).bernoulli_(L.linspace(0, 1, n)),
    "randint_like": lambda L, n: L.randint_like(L.zeros(n), 5),
    "rand_like": lambda L, n: L.rand_like(L.zeros(n, 2)),
    "randn_like": lambda L, n: L.randn_like(L.zeros(2, n)),
    "mixed": lambda L, n: L.cat([L.randn(3), L.rand(n), L.randn(n), L.randn(1)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_distribution_matches_torch(name, T):
    fn = CASES[name]
    for n in SIZES:
        for seed in (0, 1234):
            _same(lambda L: fn(L, n), lambda L: fn(L, n), seed, T)


VIEWS = {   # PyTorch fills a non-contiguous tensor in memory order, normal_ element by element
    "normal_t": lambda L: L.zeros(8, 5).t().normal_(),
    "uniform_t": lambda L: L.zeros(8, 5).t().uniform_(-1, 2),
    "normal_column": lambda L: L.zeros(40, 3)[:, 1].normal_(),
    "bernoulli_t": lambda L: L.zeros(6, 4).t().bernoulli_(0.4),
    "random_t": lambda L: L.zeros(6, 4, dtype=L.int64).t().random_(0, 100),
    "exponential_permuted": lambda L: L.zeros(2, 3, 4).permute(2, 0, 1).exponential_(),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_fills_of_views_match_torch(name, T):
    _same(VIEWS[name], VIEWS[name], 0, T)


@pytest.mark.parametrize("replacement,n", [(False, 1), (False, 4), (True, 1), (True, 7)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multinomial_matches_torch(replacement, n, dtype, T):
    w = np.random.default_rng(0).random((3, 12)) ** 3
    for seed in range(5):
        _same(lambda L: L.multinomial(L.tensor(w, dtype=getattr(L, dtype)), n, replacement),
              lambda L: L.multinomial(L.tensor(w, dtype=getattr(L, dtype)), n, replacement),
              seed, T)


_DEFAULT_BUILD_CHECK = """
import numpy as np, torch, fastnn
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
for seed in (0, 1):
    for f in (lambda L: L.randn(20011), lambda L: L.randn(100, dtype=L.float64),
              lambda L: L.empty(3000).normal_(0.3, 0.02), lambda L: L.randn(5),
              lambda L: L.empty(3000).uniform_(-0.0883, 0.0883),
              lambda L: L.empty(7, dtype=L.float64).normal_(0.3, 0.7),
              lambda L: L.nn.Linear(30, 20).weight.detach()):
        torch.manual_seed(seed)
        a = f(torch).numpy()
        fastnn.manual_seed(seed)
        b = f(fastnn).numpy()
        assert a.dtype == b.dtype and np.array_equal(a, b), (seed, int((a != b).sum()))
print("ok")
"""


def test_pytorch_default_build_streams(T, tmp_path):
    """PyTorch's kernels without AVX2 (ATEN_CPU_CAPABILITY=default: what its portable code
    computes, as on AVX-512 machines for the normals): fastnn follows it there too."""
    import os
    import subprocess
    import sys
    script = tmp_path / "default_build.py"
    script.write_text(_DEFAULT_BUILD_CHECK)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


_NATIVE_BUILD_CHECK = _DEFAULT_BUILD_CHECK.replace(
    'assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"\n',
    'print(torch.backends.cpu.get_cpu_capability())\n')


def test_pytorch_native_build_streams(T, tmp_path):
    """The build PyTorch picks on this CPU by itself (tests/conftest.py pins the AVX2 one for the
    other comparisons). fastnn's reading of the AVX-512 build is unverified, so a mismatch there
    is an expected failure that CI reports (XFAIL/XPASS), and a pass on AVX-512 verifies it."""
    import os
    import subprocess
    import sys
    script = tmp_path / "native_build.py"
    script.write_text(_NATIVE_BUILD_CHECK)
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=300)
    lines = r.stdout.split()
    capability = lines[0] if lines else "?"
    ok = r.returncode == 0 and lines[-1:] == ["ok"]
    if not ok and capability == "AVX512":
        pytest.xfail("PyTorch's AVX-512 build draws other float32 normals than fastnn's reading "
                     "of it (unverified): " + r.stderr[-500:])
    assert ok, (capability, r.stderr[-3000:])


def test_generators_and_states_cross_between_libraries(T):
    tg, fg = T.Generator().manual_seed(99), fastnn.Generator().manual_seed(99)
    for f in (lambda L, g: L.randn(40, generator=g), lambda L, g: L.rand(5, generator=g),
              lambda L, g: L.randint(0, 50, (9,), generator=g),
              lambda L, g: L.randperm(12, generator=g), lambda L, g: L.randn(2, generator=g),
              lambda L, g: L.randn_like(L.zeros(20), generator=g),
              lambda L, g: L.multinomial(L.ones(9), 4, generator=g),
              lambda L, g: L.empty(30).normal_(generator=g).uniform_(generator=g)):
        np.testing.assert_array_equal(f(T, tg).numpy(), f(fastnn, fg).numpy())
    assert tg.get_state().numpy().tobytes() == fg.get_state().numpy().tobytes()
    assert T.Generator().initial_seed() == fastnn.Generator().initial_seed()
    # a state taken from torch continues in fastnn, and the reverse
    T.manual_seed(4)
    T.randn(5)
    fastnn.set_rng_state(T.get_rng_state())
    np.testing.assert_array_equal(fastnn.randn(6).numpy(), T.randn(6).numpy())
    T.set_rng_state(T.tensor(fastnn.get_rng_state().numpy()))
    np.testing.assert_array_equal(fastnn.rand(6).numpy(), T.rand(6).numpy())


LAYERS = [
    ("Linear", (20, 30), {}), ("Linear", (5, 3), {"bias": False}), ("Bilinear", (4, 5, 6), {}),
    ("Conv1d", (3, 8, 5), {}), ("Conv2d", (3, 8, 3), {}),
    ("Conv2d", (4, 8, 3), {"groups": 2, "bias": False}),
    ("ConvTranspose1d", (3, 8, 5), {}), ("ConvTranspose2d", (3, 8, 3), {}),
    ("Embedding", (50, 16), {}), ("Embedding", (10, 4), {"padding_idx": 0}),
    ("EmbeddingBag", (50, 16), {}),
    ("RNN", (10, 20), {"num_layers": 2}), ("GRU", (10, 20), {}), ("LSTM", (10, 20), {}),
    ("LSTM", (10, 20), {"num_layers": 2, "bidirectional": True}),
    ("RNNCell", (10, 20), {}), ("GRUCell", (10, 20), {}), ("LSTMCell", (10, 20), {}),
    ("LayerNorm", (16,), {}), ("RMSNorm", (16,), {}), ("BatchNorm1d", (16,), {}),
    ("BatchNorm2d", (16,), {}), ("GroupNorm", (4, 16), {}),
    ("InstanceNorm2d", (16,), {"affine": True}), ("PReLU", (), {}), ("PReLU", (8,), {}),
    ("MultiheadAttention", (16, 4), {}), ("MultiheadAttention", (16, 4), {"kdim": 8, "vdim": 12}),
    ("TransformerEncoderLayer", (16, 4, 32), {}), ("TransformerDecoderLayer", (16, 4, 32), {}),
    ("Transformer", (), {"d_model": 16, "nhead": 2, "num_encoder_layers": 1,
                         "num_decoder_layers": 1, "dim_feedforward": 32}),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,args,kw", LAYERS, ids=[f"{n}{i}" for i, (n, _, _) in
                                                       enumerate(LAYERS)])
def test_layer_initialises_as_torch(name, args, kw, T):
    for seed in (0, 7):
        T.manual_seed(seed)
        theirs = getattr(T.nn, name)(*args, **kw)
        fastnn.manual_seed(seed)
        ours = getattr(nn, name)(*args, **kw)
        tp = [(k, v.detach().numpy()) for k, v in theirs.named_parameters()]
        fp = [(k, v.detach().numpy()) for k, v in ours.named_parameters()]
        assert [k for k, _ in tp] == [k for k, _ in fp]
        for (k, a), (_, b) in zip(tp, fp):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}.{k}")
        assert T.get_rng_state().numpy().tobytes() == fastnn.get_rng_state().numpy().tobytes()


@pytest.mark.parametrize("init", ["uniform_", "normal_", "xavier_uniform_", "xavier_normal_",
                                  "kaiming_uniform_", "kaiming_normal_", "trunc_normal_"])
def test_init_functions_match_torch(init, T):
    for shape in (((7,),) if init in ("uniform_", "normal_", "trunc_normal_") else ()) + \
            ((30, 20), (8, 3, 5, 5)):
        _same(lambda L: getattr(L.nn.init, init)(L.empty(*shape)),
              lambda L: getattr(L.nn.init, init)(L.empty(*shape)), 3, T)
    _same(lambda L: L.nn.init.trunc_normal_(L.empty(400, 10), std=1.0, a=-0.3, b=0.4),
          lambda L: L.nn.init.trunc_normal_(L.empty(400, 10), std=1.0, a=-0.3, b=0.4), 1, T)


def test_dropout_masks_match_torch(T):
    x = np.random.default_rng(0).standard_normal((4, 6, 5, 5)).astype(np.float32)
    for p in (0.1, 0.5, 0.77):
        _same(lambda L: L.nn.functional.dropout(L.tensor(x), p),
              lambda L: L.nn.functional.dropout(L.tensor(x), p), 1, T)
        _same(lambda L: L.nn.functional.dropout2d(L.tensor(x), p),
              lambda L: L.nn.functional.dropout2d(L.tensor(x), p), 2, T)
        _same(lambda L: L.nn.Dropout(p)(L.tensor(x)), lambda L: L.nn.Dropout(p)(L.tensor(x)),
              3, T)


def test_data_pipeline_draws_match_torch(T):
    from torch.utils.data import DataLoader as TDL, RandomSampler as TRS
    from torch.utils.data import SubsetRandomSampler as TSS, TensorDataset as TTD
    from torch.utils.data import WeightedRandomSampler as TWS, random_split as t_split
    from fastnn.utils.data import RandomSampler, SubsetRandomSampler, WeightedRandomSampler
    x = np.arange(50)

    def run(L, DL, DS, split, RS, SS, WS):
        L.manual_seed(0)
        out = []
        loader = DL(DS(L.tensor(x)), batch_size=8, shuffle=True)
        for _ in range(2):
            out += [b[0].tolist() for b in loader]
        out.append(list(split(range(20), [0.7, 0.3])[1].indices))
        out.append(list(RS(range(10), replacement=True, num_samples=40)))
        out.append(list(RS(range(10), num_samples=25)))
        out.append(list(SS([5, 6, 7, 8])))
        out.append(list(WS([0.1, 0.5, 2.0, 0.0, 3.0], 12)))
        out.append(list(WS([0.1, 0.5, 2.0, 0.0, 3.0], 3, replacement=False)))
        g = L.Generator().manual_seed(3)
        out.append(list(RS(range(10), generator=g)))
        out += [b[0].tolist() for b in DL(DS(L.tensor(x)), batch_size=16, shuffle=True,
                                          generator=g)]
        out.append(L.rand(2).tolist())
        return out
    theirs = run(T, TDL, TTD, t_split, TRS, TSS, TWS)
    ours = run(fastnn, DataLoader, TensorDataset, random_split, RandomSampler,
               SubsetRandomSampler, WeightedRandomSampler)
    assert ours == theirs


def test_seeded_model_trains_as_torch(T):
    """A few SGD steps of a seed-initialised MLP with dropout: the same losses, no copying."""
    data = np.random.default_rng(1).standard_normal((64, 10)).astype(np.float32)
    y = (data[:, 0] > 0).astype(np.int64)

    def run(L):
        L.manual_seed(0)
        model = L.nn.Sequential(L.nn.Linear(10, 32), L.nn.ReLU(), L.nn.Dropout(0.2),
                                L.nn.Linear(32, 2))
        opt = L.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for _ in range(5):
            opt.zero_grad()
            loss = L.nn.functional.cross_entropy(model(L.tensor(data)), L.tensor(y))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses
    np.testing.assert_allclose(run(fastnn), run(T), rtol=1e-5)
