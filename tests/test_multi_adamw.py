"""adam_multi_step, Adam over a list of tensors in one call: equal to adam_step tensor by tensor
on every backend (bit for bit on the CPU ones: the same arithmetic per element), gradient
clipping folded in through grad_scale, the threaded path (more elements than the threading
threshold, split across tensor boundaries), bad input, and optim.AdamW built on it against
PyTorch."""
import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn import nn, optim

from conftest import skip_if_missing


def _state(rng, shapes, dtype):
    p, g, m = ([rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3))
    v = [np.abs(rng.standard_normal(s)).astype(dtype) for s in shapes]
    return p, g, m, v


def _copy(xs):
    return [x.copy() for x in xs]


# sizes off the SIMD width, an empty tensor, and (last) more elements in all than the C kernel's
# threading threshold (2^16), so that thread boundaries fall inside tensors
SHAPES = [(5, 7), (1,), (0,), (13,), (3, 4, 2)]
BIG = [(130, 257), (1,), (40000,), (3, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [SHAPES, BIG], ids=["small", "threaded"])
@pytest.mark.parametrize("opts", [dict(), dict(weight_decay=0.1),
                                  dict(weight_decay=0.1, decoupled=True, betas=(0.8, 0.99)),
                                  dict(weight_decay=0.1, decoupled=True, grad_scale=0.3)])
def test_equals_adam_step_per_tensor(backend, dtype, shapes, opts):
    skip_if_missing(backend, "adam_multi_step")
    if backend == "cuda" and shapes is BIG:
        pytest.skip("the CUDA simulator is slow; the small lists cover its kernel")
    rng = np.random.default_rng(3)
    p, g, m, v = _state(rng, shapes, dtype)
    multi = [_copy(p), _copy(m), _copy(v)]
    single = [_copy(p), _copy(m), _copy(v)]
    scale = opts.pop("grad_scale", 1.0)
    for step in (1, 2, 7):
        out = K.adam_multi_step(multi[0], g, multi[1], multi[2], step=step, lr=1e-2,
                                grad_scale=scale, backend=backend, **opts)
        assert isinstance(out, tuple) and all(a is b for a, b in zip(out, multi[0]))
        for i in range(len(shapes)):
            gi = g[i] * dtype(scale) if scale != 1.0 else g[i]
            K.adam_step(single[0][i], gi, single[1][i], single[2][i], step=step, lr=1e-2,
                        backend=backend, **opts)
    for got, want in zip(multi, single):
        for a, b in zip(got, want):
            if backend == "cuda":
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_array_equal(a, b)


def test_threaded_path_matches_reference_and_threads_agree():
    """The C kernel's one-team split: 1 and 2 threads give the numpy reference's numbers."""
    if "cython" not in fastnn.available_backends():
        pytest.skip("no cython backend")
    rng = np.random.default_rng(5)
    p, g, m, v = _state(rng, BIG, np.float64)
    ref = [_copy(p), _copy(m), _copy(v)]
    K.adam_multi_step(ref[0], g, ref[1], ref[2], step=4, lr=1e-3, weight_decay=0.1,
                      decoupled=True, grad_scale=0.7, backend="numpy")
    before = fastnn.get_num_threads()
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            got = [_copy(p), _copy(m), _copy(v)]
            K.adam_multi_step(got[0], g, got[1], got[2], step=4, lr=1e-3, weight_decay=0.1,
                              decoupled=True, grad_scale=0.7, backend="cython")
            for a_list, b_list in zip(got, ref):
                for a, b in zip(a_list, b_list):
                    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    finally:
        fastnn.set_num_threads(before)


def test_grad_scale_is_clipping():
    """grad_scale = the clip coefficient gives what clipping the gradients first gives."""
    rng = np.random.default_rng(7)
    p, g, m, v = _state(rng, SHAPES, np.float32)
    a, b = [_copy(p), _copy(m), _copy(v)], [_copy(p), _copy(m), _copy(v)]
    coef = np.float32(0.25)
    K.adam_multi_step(a[0], g, a[1], a[2], step=1, lr=0.1, grad_scale=float(coef))
    K.adam_multi_step(b[0], [x * coef for x in g], b[1], b[2], step=1, lr=0.1)
    for x, y in zip(a, b):
        for s, t in zip(x, y):
            np.testing.assert_array_equal(s, t)


def test_bad_input(backend):
    skip_if_missing(backend, "adam_multi_step")
    f32 = lambda *s: np.zeros(s, np.float32)
    ok = ([f32(3)], [f32(3)], [f32(3)], [f32(3)])
    with pytest.raises(TypeError, match="adam_multi_step: params must be a list"):
        K.adam_multi_step(f32(3), *ok[1:], step=1, backend=backend)
    with pytest.raises(ValueError, match="1 params but 2 grads"):
        K.adam_multi_step(ok[0], [f32(3), f32(3)], *ok[2:], step=1, backend=backend)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(4,\)"):
        K.adam_multi_step(ok[0], [f32(4)], *ok[2:], step=1, backend=backend)
    with pytest.raises(TypeError, match=r"params\[1\] must be a numpy array of dtype float32"):
        K.adam_multi_step([f32(3), np.zeros(2)], [f32(3), np.zeros(2)], [f32(3), np.zeros(2)],
                          [f32(3), np.zeros(2)], step=1, backend=backend)
    with pytest.raises(TypeError, match=r"exp_avgs\[0\] has dtype float64"):
        K.adam_multi_step(ok[0], ok[1], [np.zeros(3)], ok[3], step=1, backend=backend)
    with pytest.raises(ValueError, match="step must be >= 1"):
        K.adam_multi_step(*ok, step=0, backend=backend)
    p = f32(3)
    with pytest.raises(ValueError, match="a param appears twice"):
        K.adam_multi_step([p, p], [f32(3)] * 2, [f32(3), f32(3)], [f32(3), f32(3)], step=1,
                          backend=backend)
    assert K.adam_multi_step([], [], [], [], step=1, backend=backend) == ()


def test_trusted_entry_falls_back_to_checks():
    """The trusted door takes a strided gradient through the checked path, same numbers."""
    from fastnn.kernels import trusted as T
    rng = np.random.default_rng(9)
    p, g, m, v = _state(rng, [(4, 6)], np.float32)
    wide = np.zeros((4, 12), np.float32)
    wide[:, ::2] = g[0]
    a, b = [_copy(p), _copy(m), _copy(v)], [_copy(p), _copy(m), _copy(v)]
    T.adam_multi_step(a[0], [wide[:, ::2]], a[1], a[2], step=2, lr=1e-2)
    T.adam_multi_step(b[0], g, b[1], b[2], step=2, lr=1e-2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
    with pytest.raises(ValueError, match="step must be >= 1"):
        T.adam_multi_step(a[0], g, a[1], a[2], step=0)



@pytest.mark.parametrize("which", ["exp_avg", "exp_avg_sq"])
def test_trusted_entries_refuse_read_only_state(which):
    """The update kernels write the optimizer state, so a read-only m or v (here over an
    immutable bytes object) must take the checked path and its error, and stay untouched."""
    from fastnn.kernels import trusted as T
    frozen = bytes(16)
    ro = np.frombuffer(frozen, np.float32)
    arrays = {"exp_avg": np.zeros(4, np.float32), "exp_avg_sq": np.zeros(4, np.float32)}
    arrays[which] = ro
    p, g = np.ones(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match="must be a writeable C-contiguous array"):
        T.adam_multi_step([p], [g], [arrays["exp_avg"]], [arrays["exp_avg_sq"]], step=1)
    with pytest.raises(ValueError, match="must be a writeable C-contiguous array"):
        T.adam_step(p, g, arrays["exp_avg"], arrays["exp_avg_sq"], step=1)
    with pytest.raises(ValueError, match="must be a writeable C-contiguous array"):
        T.sgd_step(p, g, ro, lr=0.1, momentum=0.9)
    assert frozen == bytes(16) and np.all(p == 1)

def test_trusted_entry_on_each_backend_takes_nd_arrays(backend):
    """The trusted door hands the backend the arrays in their own shapes (no reshape per
    tensor): each backend must treat them as flat, and agree with the checked door."""
    skip_if_missing(backend, "adam_multi_step")
    from fastnn.kernels import trusted as T
    from fastnn.kernels.dispatch import use_backend
    rng = np.random.default_rng(12)
    p, g, m, v = _state(rng, SHAPES, np.float32)
    a, b = [_copy(p), _copy(m), _copy(v)], [_copy(p), _copy(m), _copy(v)]
    with use_backend(backend):
        T.adam_multi_step(a[0], g, a[1], a[2], step=2, lr=1e-2, weight_decay=0.1, decoupled=True,
                          grad_scale=0.5)
    K.adam_multi_step(b[0], g, b[1], b[2], step=2, lr=1e-2, weight_decay=0.1, decoupled=True,
                      grad_scale=0.5, backend=backend)
    for x, y in zip(a, b):
        for s, t in zip(x, y):
            assert s.shape == t.shape
            np.testing.assert_array_equal(s, t)


def _mlp(mod):
    return mod.Sequential(mod.Linear(6, 16), mod.LayerNorm(16), mod.Linear(16, 3))


def test_adamw_matches_pytorch_with_groups_and_clipping():
    """optim.AdamW over two groups (decay / no decay, as GPT.configure_optimizers makes them),
    with clip_grad_norm_ before each step, tracks torch.optim.AdamW for 20 steps."""
    torch = pytest.importorskip("torch")
    from fastnn.nn.utils import clip_grad_norm_
    fastnn.manual_seed(0)
    ours = _mlp(nn)
    theirs = _mlp(torch.nn)
    theirs.load_state_dict({k: torch.tensor(np.asarray(v._data)) for k, v in
                            ours.state_dict().items()})

    def groups(model):
        ps = list(model.parameters())
        return [dict(params=[p for p in ps if p.dim() >= 2], weight_decay=0.1),
                dict(params=[p for p in ps if p.dim() < 2], weight_decay=0.0)]
    opt = optim.AdamW(groups(ours), lr=3e-2, betas=(0.9, 0.99))
    topt = torch.optim.AdamW(groups(theirs), lr=3e-2, betas=(0.9, 0.99))
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        y = rng.integers(0, 3, 8)
        loss = nn.functional.cross_entropy(ours(fastnn.tensor(x)), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(ours.parameters(), 0.5)
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)),
                                                  torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        topt.step()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_adam_params_with_different_steps_and_dtypes():
    """A parameter that missed steps (no grad) keeps its own step count and bias correction; a
    float64 parameter next to float32 ones goes in its own batch. Checked against adam_step."""
    rng = np.random.default_rng(4)
    a = fastnn.tensor(rng.standard_normal((3, 3)).astype(np.float32), requires_grad=True)
    b = fastnn.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    c = fastnn.tensor(rng.standard_normal(4), requires_grad=True)  # float64
    opt = optim.Adam([a, b, c], lr=0.1, weight_decay=0.01)
    ref = {id(t): [t._data.copy(), np.zeros_like(t._data), np.zeros_like(t._data), 0]
           for t in (a, b, c)}
    for step in range(4):
        live = (a, c) if step == 1 else (a, b, c)   # b gets no gradient at step 1
        for t in (a, b, c):
            has = any(t is u for u in live)
            t.grad = rng.standard_normal(t.shape).astype(t._data.dtype) if has else None
        for t in live:
            r = ref[id(t)]
            r[3] += 1
            K.adam_step(r[0], t.grad, r[1], r[2], step=r[3], lr=0.1, weight_decay=0.01)
        opt.step()
    assert [opt.state[t]["step"] for t in (a, b, c)] == [4, 3, 4]
    for t in (a, b, c):
        np.testing.assert_array_equal(t._data, ref[id(t)][0])
