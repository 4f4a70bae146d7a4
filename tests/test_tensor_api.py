"""PyTorch's tensor API on fastnn: top-level functions, Tensor methods, dtypes and devices.

Each case runs the same code on fastnn and on PyTorch (when installed): outputs, and gradients of
a fixed random weighting of the outputs, agree in float64 to 1e-12."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn

try:
    import torch
except ImportError:  # the PyTorch comparisons skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _rnd(*shape, seed=0, low=None):
    r = np.random.default_rng(seed)
    if low is not None:
        return r.uniform(low, low + 1.5, shape)
    return r.standard_normal(shape)


# name -> (function of (lib, *tensors), input arrays). Inputs are float64 and require grad.
CASES = {
    "flatten": (lambda L, a: L.flatten(a, 1), [_rnd(2, 3, 4)]),
    "sum_dim": (lambda L, a: L.sum(a, dim=(0, 2), keepdim=True), [_rnd(2, 3, 4)]),
    "mean": (lambda L, a: L.mean(a, 1), [_rnd(3, 4)]),
    "std": (lambda L, a: L.std(a, dim=1), [_rnd(3, 5)]),
    "var_unbiased_false": (lambda L, a: L.var(a, 0, unbiased=False), [_rnd(4, 3)]),
    "var_correction": (lambda L, a: a.var(dim=1, correction=0, keepdim=True), [_rnd(4, 3)]),
    "max_all": (lambda L, a: L.max(a), [_rnd(3, 4)]),
    "max_dim": (lambda L, a: L.max(a, 1)[0] + L.max(a, 1).values, [_rnd(3, 4)]),
    "min_dim_keep": (lambda L, a: L.min(a, dim=0, keepdim=True).values, [_rnd(3, 4)]),
    "max_binary": (lambda L, a, b: L.max(a, b), [_rnd(3, 4), _rnd(3, 4, seed=1)]),
    "maximum": (lambda L, a, b: L.maximum(a, b), [_rnd(3, 4), _rnd(4, seed=1)]),
    "minimum": (lambda L, a, b: L.minimum(a, b), [_rnd(3, 4), _rnd(3, 4, seed=2)]),
    "amax": (lambda L, a: L.amax(a, dim=(0, 1)), [_rnd(3, 4, 2)]),
    "tanh": (lambda L, a: L.tanh(a), [_rnd(3, 4)]),
    "sigmoid": (lambda L, a: L.sigmoid(a), [_rnd(3, 4)]),
    "relu": (lambda L, a: L.relu(a), [_rnd(3, 4)]),
    "exp": (lambda L, a: L.exp(a), [_rnd(3, 4)]),
    "log": (lambda L, a: L.log(a), [_rnd(3, 4, low=0.5)]),
    "log1p": (lambda L, a: L.log1p(a), [_rnd(3, 4, low=0.5)]),
    "sqrt": (lambda L, a: L.sqrt(a), [_rnd(3, 4, low=0.5)]),
    "rsqrt": (lambda L, a: L.rsqrt(a), [_rnd(3, 4, low=0.5)]),
    "pow_scalar": (lambda L, a: L.pow(a, 3), [_rnd(3, 4)]),
    "pow_tensor": (lambda L, a, b: L.pow(a, b), [_rnd(3, 4, low=0.5), _rnd(3, 4, seed=1)]),
    "abs": (lambda L, a: L.abs(a), [_rnd(3, 4)]),
    "sin_cos": (lambda L, a: L.sin(a) * L.cos(a), [_rnd(3, 4)]),
    "round_floor_ceil_sign": (lambda L, a: L.round(a * 3) + L.floor(a) + L.ceil(a) + L.sign(a),
                              [_rnd(3, 4)]),
    "cat": (lambda L, a, b: L.cat([a, b], dim=1), [_rnd(2, 3), _rnd(2, 2, seed=1)]),
    "stack": (lambda L, a, b: L.stack([a, b], dim=-1), [_rnd(2, 3), _rnd(2, 3, seed=1)]),
    "where": (lambda L, a, b: L.where(a > 0, a, b), [_rnd(3, 4), _rnd(4, seed=1)]),
    "clamp": (lambda L, a: L.clamp(a, -0.5, 0.7), [_rnd(3, 4)]),
    "clamp_min_only": (lambda L, a: L.clamp(a, min=0.1), [_rnd(3, 4)]),
    "clamp_tensor": (lambda L, a, lo: L.clamp(a, min=lo), [_rnd(3, 4), _rnd(4, seed=3)]),
    "matmul": (lambda L, a, b: L.matmul(a, b), [_rnd(2, 3, 4), _rnd(4, 5, seed=1)]),
    "mm": (lambda L, a, b: L.mm(a, b), [_rnd(3, 4), _rnd(4, 2, seed=1)]),
    "bmm": (lambda L, a, b: L.bmm(a, b), [_rnd(2, 3, 4), _rnd(2, 4, 5, seed=1)]),
    "dot": (lambda L, a, b: L.dot(a, b), [_rnd(5), _rnd(5, seed=1)]),
    "outer": (lambda L, a, b: L.outer(a, b), [_rnd(3), _rnd(4, seed=1)]),
    "addmm": (lambda L, c, a, b: L.addmm(c, a, b, beta=0.5, alpha=2.0),
              [_rnd(3, 2), _rnd(3, 4, seed=1), _rnd(4, 2, seed=2)]),
    "baddbmm": (lambda L, c, a, b: L.baddbmm(c, a, b, alpha=0.5),
                [_rnd(2, 3, 2), _rnd(2, 3, 4, seed=1), _rnd(2, 4, 2, seed=2)]),
    "einsum_matmul": (lambda L, a, b: L.einsum("ij,jk->ik", a, b), [_rnd(3, 4), _rnd(4, 2, seed=1)]),
    "einsum_batch": (lambda L, a, b: L.einsum("bhqd,bhkd->bhqk", a, b),
                     [_rnd(2, 2, 3, 4), _rnd(2, 2, 5, 4, seed=1)]),
    "einsum_implicit": (lambda L, a, b: L.einsum("ij,kj", a, b), [_rnd(3, 4), _rnd(2, 4, seed=1)]),
    "einsum_sum_out": (lambda L, a: L.einsum("ijk->i", a), [_rnd(3, 4, 2)]),
    "einsum_ellipsis": (lambda L, a, b: L.einsum("...ij,...jk->...ik", a, b),
                        [_rnd(2, 3, 4), _rnd(2, 4, 2, seed=1)]),
    "softmax": (lambda L, a: L.softmax(a, dim=0), [_rnd(3, 4)]),
    "log_softmax": (lambda L, a: L.log_softmax(a, 1), [_rnd(3, 4)]),
    "logsumexp": (lambda L, a: L.logsumexp(a, dim=1), [_rnd(3, 4)]),
    "norm": (lambda L, a: L.norm(a) + a.norm(dim=1).sum() + a.norm(p=1, dim=0).sum(), [_rnd(3, 4)]),
    "prod": (lambda L, a: L.prod(a, 1), [_rnd(3, 4)]),
    "tril_triu": (lambda L, a: L.tril(a, -1) + L.triu(a, 1), [_rnd(4, 4)]),
    "transpose_permute": (lambda L, a: L.transpose(a, 0, 2) + L.permute(a, (2, 1, 0)),
                          [_rnd(2, 3, 2)]),
    "reshape_squeeze": (lambda L, a: L.squeeze(L.unsqueeze(L.reshape(a, (4, 3)), 0), 0),
                        [_rnd(3, 4)]),
    "chunk_split": (lambda L, a: L.chunk(a, 2, 1)[1].sum() + L.split(a, [1, 2], 0)[1].sum(),
                    [_rnd(3, 4)]),
    "clone": (lambda L, a: L.clone(a) * 2, [_rnd(3)]),
    "sub_alpha": (lambda L, a, b: L.sub(a, b, alpha=2), [_rnd(3), _rnd(3, seed=1)]),
    "add_alpha": (lambda L, a, b: L.add(a, b, alpha=0.5), [_rnd(3), _rnd(3, seed=1)]),
    "addcmul_addcdiv": (lambda L, a, b, c: L.addcmul(a, b, c, value=0.5)
                        + L.addcdiv(a, b, c + 3, value=2),
                        [_rnd(3), _rnd(3, seed=1), _rnd(3, seed=2)]),
    "lerp": (lambda L, a, b: L.lerp(a, b, 0.3), [_rnd(3), _rnd(3, seed=1)]),
    "repeat": (lambda L, a: a.repeat(2, 1, 3), [_rnd(2, 3)]),
    "repeat_interleave": (lambda L, a: a.repeat_interleave(2, dim=1), [_rnd(2, 3)]),
    "repeat_interleave_flat": (lambda L, a: a.repeat_interleave(3), [_rnd(2, 2)]),
    "roll": (lambda L, a: a.roll(1, 0) + L.roll(a, (1, -1), (0, 1)), [_rnd(3, 4)]),
    "roll_flat": (lambda L, a: a.roll(2), [_rnd(3, 2)]),
    "flip": (lambda L, a: a.flip(0) + L.flip(a, [0, 1]), [_rnd(3, 4)]),
    "narrow": (lambda L, a: a.narrow(1, 1, 2), [_rnd(3, 4)]),
    "unbind": (lambda L, a: a.unbind(1)[2] * 2 + L.unbind(a)[0][1], [_rnd(3, 4)]),
    "expand_as": (lambda L, a, b: a.expand_as(b) * b, [_rnd(3, 1), _rnd(3, 4, seed=1)]),
    "view_as_reshape_as": (lambda L, a, b: a.view_as(b) + a.reshape_as(b), [_rnd(3, 4),
                                                                            _rnd(4, 3, seed=1)]),
    "masked_fill": (lambda L, a: a.masked_fill(a > 0.5, -1.0), [_rnd(3, 4)]),
    "masked_select": (lambda L, a: a.masked_select(a > 0), [_rnd(3, 4)]),
    "mT_T": (lambda L, a: a.mT.sum(0).sum(1) + a.T.sum((1, 2)), [_rnd(2, 3, 4)]),
    "type_as": (lambda L, a, b: a.float().type_as(b) * b, [_rnd(3), _rnd(3, seed=1)]),
    "index_tensor": (lambda L, a: a[L.tensor([0, 2, 0])], [_rnd(3, 4)]),
    "index_bool": (lambda L, a: a[a > 0], [_rnd(3, 4)]),
    "mod": (lambda L, a: a % 0.7, [_rnd(3, 4)]),
    "diagonal_trace": (lambda L, a: a.diagonal() * 2 + L.trace(a), [_rnd(3, 3)]),
    "atan2_erf": (lambda L, a, b: L.atan2(a, b) + L.erf(a), [_rnd(3), _rnd(3, seed=1)]),
}


def _weights(out, seed):
    return np.random.default_rng(100 + seed).standard_normal(out.shape)


def _run(lib, fn, arrays):
    ts = [lib.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(lib, *ts)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    vals = [np.array(o.detach().numpy()) for o in outs]
    loss = None
    for i, o in enumerate(outs):
        if o.dtype not in (lib.float64,) or not o.requires_grad:
            continue
        term = (o * lib.tensor(_weights(vals[i], i))).sum()
        loss = term if loss is None else loss + term
    grads = []
    if loss is not None:
        loss.backward()
        grads = [None if t.grad is None else np.array(t.grad) for t in ts]
    return vals, grads


@needs_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_function_matches_torch(name):
    fn, arrays = CASES[name]
    fv, fg = _run(fastnn, fn, arrays)
    tv, tg = _run(torch, fn, arrays)
    assert len(fv) == len(tv)
    for a, b in zip(fv, tv):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
    assert len(fg) == len(tg)
    for a, b in zip(fg, tg):
        if a is None or b is None:
            assert a is None and b is None, name
            continue
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)


@needs_torch
@pytest.mark.parametrize("name", ["argmax", "argmin", "all", "any", "eq", "cmp"])
def test_integer_and_boolean_results_match_torch(name):
    a = _rnd(3, 4)
    b = _rnd(3, 4, seed=1)
    cases = {
        "argmax": lambda L, x, y: [L.argmax(x), L.argmax(x, dim=1), x.argmax(0, keepdim=True)],
        "argmin": lambda L, x, y: [L.argmin(x), x.argmin(dim=1)],
        "all": lambda L, x, y: [(x > -5).all(), (x > 0).all(dim=1), L.all(x > 0, 0)],
        "any": lambda L, x, y: [(x > 0).any(), (x > 1).any(dim=1, keepdim=True), L.any(x > 1)],
        "eq": lambda L, x, y: [x.eq(y), x.ne(y), L.eq(x, x), x == 0.5],
        "cmp": lambda L, x, y: [x.lt(y), x.le(y), x.gt(y), x.ge(y), L.gt(x, 0), x < 0, x >= y],
    }
    for f, t in zip(cases[name](fastnn, fastnn.tensor(a), fastnn.tensor(b)),
                    cases[name](torch, torch.tensor(a), torch.tensor(b))):
        assert f.shape == tuple(t.shape)
        np.testing.assert_array_equal(f.numpy(), t.numpy())
        assert str(f.dtype) == str(t.dtype)


# ---------------------------------------------------------------- construction and dtypes
def test_dtype_aliases_and_default_dtype():
    assert fastnn.float is fastnn.float32 and fastnn.double == fastnn.float64
    assert fastnn.long == fastnn.int64 and fastnn.int == fastnn.int32
    assert fastnn.bool == np.bool_ and fastnn.half == np.float16 and fastnn.uint8 == np.uint8
    assert fastnn.Tensor([1, 2, 3]).dtype == fastnn.float32  # torch.Tensor: always float
    assert fastnn.tensor([1, 2]).dtype == fastnn.int64
    assert fastnn.tensor([True, False]).dtype == fastnn.bool
    assert fastnn.tensor([1.5, 2]).dtype == fastnn.float32
    assert fastnn.get_default_dtype() == fastnn.float32
    fastnn.set_default_dtype(fastnn.float64)
    try:
        assert fastnn.tensor([1.5]).dtype == fastnn.float64
        assert fastnn.zeros(2).dtype == fastnn.float64 and fastnn.randn(2).dtype == np.float64
        assert nn.Linear(2, 2).weight.dtype == np.float64
        assert fastnn.arange(0, 1, 0.5).dtype == np.float64
    finally:
        fastnn.set_default_dtype(fastnn.float32)
    assert fastnn.tensor([1.5]).dtype == fastnn.float32
    with pytest.raises(TypeError, match="bfloat16"):
        fastnn.zeros(2, dtype=fastnn.bfloat16)
    with pytest.raises(TypeError, match="bfloat16"):
        fastnn.zeros(2).bfloat16()
    h = fastnn.ones(2).half()
    assert h.dtype == np.float16 and (h + h).dtype == np.float16
    with pytest.raises(TypeError, match="float16"):
        nn.Linear(2, 2).half()
    x = fastnn.tensor([1.0], dtype=fastnn.double)
    assert x.to(fastnn.float).dtype == np.float32 and x.to(x).dtype == np.float64
    assert fastnn.arange(4).dtype == np.int64 and (fastnn.arange(4) / 2).dtype == np.float32
    assert (fastnn.arange(4) * 0.5).dtype == np.float32


@needs_torch
def test_factories_match_torch():
    for name, args, kw in [("zeros", (2, 3), {}), ("ones", ((2,),), {"dtype": "int64"}),
                           ("full", ((2, 2), 7), {}), ("full", ((2,), 1.5), {}),
                           ("full", ((2,), True), {}), ("eye", (3,), {}), ("eye", (2, 3), {}),
                           ("arange", (5,), {}), ("arange", (1, 2.5, 0.5), {}),
                           ("arange", (0, 1, 0.1), {}), ("linspace", (0, 1, 7), {}),
                           ("linspace", (-2, 3.5, 11), {}), ("logspace", (0, 2, 5), {}),
                           ("empty", (2, 0), {})]:
        kwf = {k: (getattr(fastnn, v) if isinstance(v, str) else v) for k, v in kw.items()}
        kwt = {k: (getattr(torch, v) if isinstance(v, str) else v) for k, v in kw.items()}
        f = getattr(fastnn, name)(*args, device="cpu", **kwf)
        t = getattr(torch, name)(*args, device="cpu", **kwt)
        assert f.shape == tuple(t.shape) and str(f.dtype) == str(t.dtype), (name, args)
        if name != "empty":
            np.testing.assert_allclose(f.numpy(), t.numpy(), rtol=1e-6, err_msg=name)
    x = fastnn.ones(2, 3, dtype=fastnn.float64)
    for like in ("zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"):
        y = getattr(fastnn, like)(x)
        assert y.shape == (2, 3) and y.dtype == np.float64
    assert fastnn.full_like(x, 2).numpy().tolist() == [[2.0] * 3] * 2
    assert fastnn.randint(0, 5, (3,), device="cpu").dtype == np.int64
    assert fastnn.randint(3, (2, 2)).shape == (2, 2)
    assert sorted(fastnn.randperm(4).tolist()) == [0, 1, 2, 3]
    fastnn.manual_seed(3)
    a = fastnn.rand(3, device=fastnn.device("cpu"))
    fastnn.manual_seed(3)
    assert fastnn.equal(a, fastnn.rand(3))
    g = np.random.default_rng(0)
    assert fastnn.randn(2, generator=g).shape == (2,)


def test_small_functions():
    x = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert fastnn.numel(x) == 4 and x.numel() == 4 and x.nelement() == 4
    assert fastnn.is_tensor(x) and not fastnn.is_tensor(x.numpy())
    assert fastnn.is_floating_point(x) and not fastnn.is_floating_point(fastnn.tensor([1]))
    assert fastnn.allclose(x, x + 1e-9) and not fastnn.allclose(x, x + 1)
    assert fastnn.isclose(x, x + 1e-9).all()
    assert fastnn.equal(x, x.clone()) and not fastnn.equal(x, x[0])
    assert fastnn.where(x > 2)[1].tolist() == [0, 1]
    with fastnn.inference_mode():
        assert not (x * 2).requires_grad
    w = fastnn.ones(2, requires_grad=True)
    with fastnn.set_grad_enabled(False):
        assert not (w * 2).requires_grad
    assert (w * 2).requires_grad
    fastnn.set_grad_enabled(False)
    assert not fastnn.is_grad_enabled()
    fastnn.set_grad_enabled(True)

    @fastnn.no_grad()
    def f(t):
        return t * 2

    @fastnn.no_grad
    def g(t):
        return t * 2
    assert not f(w).requires_grad and not g(w).requires_grad
    assert fastnn.finfo(fastnn.float32).eps == np.finfo(np.float32).eps


# ---------------------------------------------------------------- methods
@needs_torch
def test_methods_match_torch():
    a = _rnd(2, 3, 4)
    for lib in (fastnn, torch):
        x = lib.tensor(a)
        assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
        assert x.dim() == 3 and x.ndim == 3 and x.shape == (2, 3, 4)
        assert x.element_size() == 8 and x.float().element_size() == 4
        assert x.is_contiguous() and not x.transpose(0, 2).is_contiguous()
        assert x.contiguous() is x and x.transpose(0, 2).contiguous().is_contiguous()
        assert x.stride() == (12, 4, 1) and x.transpose(0, 1).stride() == (4, 12, 1)
        assert x.stride(0) == 12
        assert x[1].storage_offset() == 12 and x[:, 1].storage_offset() == 4
        assert x[1].data_ptr() == x.data_ptr() + 12 * 8
        assert x.type() == "torch.DoubleTensor" and x.float().type() == "torch.FloatTensor"
        assert x.type(lib.float32).dtype == lib.float32
        assert x.long().dtype == lib.int64 and x.int().dtype == lib.int32
        assert x.bool().dtype == lib.bool and x.double().dtype == lib.float64
        assert x.half().dtype == lib.float16
        n = x.new_zeros(2, 2)
        assert n.dtype == lib.float64 and n.sum().item() == 0
        assert x.new_ones((3,)).tolist() == [1.0, 1.0, 1.0]
        assert x.new_full((2,), 3).tolist() == [3.0, 3.0] and x.new_empty(4).shape == (4,)
        nt = x.new_tensor([1, 2])
        assert nt.dtype == lib.float64 and nt.tolist() == [1.0, 2.0]
        assert x[0, 1, 2].item() == a[0, 1, 2] and x[0].tolist() == a[0].tolist()
        assert len(x.unbind(2)) == 4 and x.unbind(2)[1].shape == (2, 3)
        y = x.detach()
        y.requires_grad_()
        assert y.requires_grad and y.is_leaf
        z = y * 2
        z.detach_()
        assert not z.requires_grad and z.grad_fn is None
        assert x.masked_select(x > 0).shape == (int((a > 0).sum()),)


def test_numpy_refuses_tensors_that_require_grad():
    x = fastnn.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad. "
                                           r"Use tensor.detach\(\).numpy\(\) instead."):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        fastnn.tensor([1, 2], requires_grad=True)


# ---------------------------------------------------------------- devices
def test_devices_on_the_cpu():
    cpu = fastnn.device("cpu")
    assert cpu.type == "cpu" and cpu.index is None and str(cpu) == "cpu"
    assert repr(cpu) == "device(type='cpu')" and cpu == "cpu" and cpu == fastnn.device(cpu)
    c1 = fastnn.device("cuda:1")
    assert (c1.type, c1.index, str(c1)) == ("cuda", 1, "cuda:1")
    assert fastnn.device("cuda", 0) == fastnn.device("cuda:0")
    with pytest.raises(RuntimeError):
        fastnn.device("gpu")
    x = fastnn.zeros(2, device=cpu)
    assert x.device == cpu and x.device.type == "cpu" and not x.is_cuda and x.is_cpu
    assert x.to("cpu") is x and x.cpu() is x and x.to(cpu, fastnn.float64).dtype == np.float64
    assert x.to(device="cpu", dtype=fastnn.float16).dtype == np.float16
    assert x.to("cpu", copy=True) is not x
    for make in (lambda: fastnn.zeros(2, device="cuda"), lambda: x.cuda(), lambda: x.to("cuda"),
                 lambda: fastnn.tensor([1.0], device="cuda:0"), lambda: nn.Linear(2, 2).cuda(),
                 lambda: nn.Linear(2, 2).to("cuda"), lambda: fastnn.arange(3, device="cuda")):
        with pytest.raises(AssertionError, match="fastnn: no CUDA device"):
            make()
        with pytest.raises(RuntimeError, match="fastnn: no CUDA device"):
            make()
    for fn, args in [("zeros", (2,)), ("ones", (2,)), ("empty", (2,)), ("full", ((2,), 1.0)),
                     ("arange", (3,)), ("randn", (2,)), ("rand", (2,)), ("randint", (0, 3, (2,))),
                     ("eye", (2,)), ("linspace", (0, 1, 3)), ("tensor", ([1.0],)),
                     ("randperm", (3,)), ("logspace", (0, 1, 3))]:
        assert getattr(fastnn, fn)(*args, device="cpu").device == "cpu"
    for fn in ("zeros_like", "ones_like", "empty_like", "randn_like", "rand_like"):
        assert getattr(fastnn, fn)(x, device="cpu").device == cpu


@needs_torch
def test_module_to_casts_parameters_in_place_as_torch():
    for lib in (fastnn, torch):
        m = lib.nn.Sequential(lib.nn.Linear(3, 2), lib.nn.LayerNorm(2))
        params = list(m.parameters())
        assert m.to(lib.device("cpu")) is m and m.cpu() is m
        assert m.double() is m and all(p.dtype == lib.float64 for p in m.parameters())
        assert [id(p) for p in m.parameters()] == [id(p) for p in params]
        m.to(lib.float32)
        assert all(p.dtype == lib.float32 for p in m.parameters())
        m.to("cpu", lib.float64)
        assert all(p.dtype == lib.float64 for p in m.parameters())
        m.to(lib.zeros(1))
        assert all(p.dtype == lib.float32 for p in m.parameters())
        m.float()
        y = m(lib.ones(4, 3))
        assert y.dtype == lib.float32


def test_autograd_namespace_and_size():
    from fastnn.autograd import grad
    x = fastnn.tensor([2.0], requires_grad=True)
    (g,) = grad(x * x, x)
    assert g.tolist() == [4.0] and x.grad is None
    s = fastnn.zeros(2, 3).size()
    assert isinstance(s, tuple) and s.numel() == 6 and s == (2, 3)


@needs_torch
def test_out_arguments_as_torch():
    res = []
    for lib in (fastnn, torch):
        t = lib.tensor(_rnd(4, 4))
        t[:, 1] = 0
        y = lib.zeros(4, 4, dtype=lib.float64)
        r = lib.matmul(t, t.T, out=y)
        assert r is y
        z = lib.zeros(4, 4, dtype=lib.float64)
        lib.mul(t, t, out=z)
        c = lib.zeros(1, dtype=lib.float64)
        lib.cat([t, t], 0, out=c)  # resized, as PyTorch's out=
        s = lib.zeros(4, dtype=lib.float64)
        lib.sum(t, 0, out=s)
        res.append([_np(v) for v in (y, z, c, s)])
        with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
            lib.add(lib.ones(2, requires_grad=True), 1, out=lib.zeros(2))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _np(t):
    return np.array(t.detach().numpy())


@needs_torch
def test_type_promotion_of_operators_matches_torch():
    import itertools
    import operator
    dts = ["float32", "float64", "int64", "int32", "bool"]
    ops = {"add": operator.add, "div": operator.truediv, "floordiv": operator.floordiv,
           "lt": operator.lt}

    def make(lib, dt):
        if dt == "bool":
            return lib.tensor(np.array([True, False, True]))
        return lib.tensor(np.array([1, 2, 3]).astype(dt))
    for (name, op), a, b in itertools.product(ops.items(), dts, dts + [2, 2.5, True]):
        if name == "floordiv" and "bool" in (a, b) or (name == "floordiv" and b is True):
            continue  # PyTorch refuses these
        got = []
        for lib in (torch, fastnn):
            with np.errstate(divide="ignore", invalid="ignore"):
                r = op(make(lib, a), make(lib, b) if isinstance(b, str) else b)
            got.append((str(r.dtype).replace("torch.", ""), _np(r).astype(float)))
        assert got[0][0] == got[1][0], (name, a, b, got[0][0], got[1][0])
        np.testing.assert_array_equal(got[0][1], got[1][1])


@needs_torch
def test_numpy_style_axis_and_keepdims_as_torch():
    a = _rnd(2, 3)
    for f in (lambda L, x: x.sum(axis=1), lambda L, x: x.sum(1, keepdims=True),
              lambda L, x: L.max(x, axis=1).values, lambda L, x: x.mean(axis=0, keepdims=True),
              lambda L, x: x.std(axis=0), lambda L, x: L.sum(x, axis=0),
              lambda L, x: L.softmax(x, axis=1), lambda L, x: L.cat([x, x], axis=1),
              lambda L, x: x.unsqueeze(axis=0), lambda L, x: x.argmax(axis=1)):
        np.testing.assert_allclose(_np(f(fastnn, fastnn.tensor(a))), _np(f(torch, torch.tensor(a))),
                                   rtol=1e-12)


@needs_torch
def test_linalg_norms_match_torch():
    a = _rnd(3, 4)
    cases = [lambda L, x: L.linalg.norm(x), lambda L, x: L.linalg.norm(x, dim=1),
             lambda L, x: L.linalg.vector_norm(x, 3, dim=0), lambda L, x: L.linalg.matrix_norm(x),
             lambda L, x: L.linalg.matrix_norm(x, 1),
             lambda L, x: L.linalg.matrix_norm(x, float("inf")),
             lambda L, x: L.linalg.norm(x, ord=1, dim=(0, 1)),
             lambda L, x: L.linalg.vector_norm(x, float("inf"))]
    for f in cases:
        res = []
        for lib in (fastnn, torch):
            x = lib.tensor(a, requires_grad=True)
            y = f(lib, x)
            y.sum().backward()
            res.append((_np(y), np.array(x.grad)))
        np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
        np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)
