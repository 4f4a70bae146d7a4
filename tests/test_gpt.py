"""fastnn.models.GPT against nanoGPT's model in PyTorch (bench/torch_gpt.py), generation with the
KV cache against full recomputation, sampling, and the train/generate commands."""
import math
import os
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import main as cli_main
from fastnn.models import gpt_cli, load_checkpoint
from fastnn.models.gpt import GPT, GPTConfig, entropy, sample_next
from fastnn import text as textlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))

TINY = dict(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=8, dropout=0.0)


def _torch_gpt(cfg):
    torch = pytest.importorskip("torch")
    from torch_gpt import GPT as TorchGPT
    torch.manual_seed(0)
    return torch, TorchGPT(cfg).double()


def _model(seed=0, **kw):
    fastnn.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, "bias": True, **kw}))


def _needs_fused_blocks():
    if "cython" not in fastnn.available_backends():
        pytest.skip("the fused blocks need the cython backend's strided attention")


def _model_and_batch(seed):
    """The tiny model and one batch of token ids and targets drawn with `seed`."""
    rng = np.random.default_rng(seed)
    return _model(), rng.integers(0, 11, (2, 9)), rng.integers(0, 11, (2, 9))


def _spread_weights(model, seed=1, std=0.5):
    """Bigger random weights than the 0.02 init, so logits are far from uniform."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p._data[...] = rng.normal(0, std, p._data.shape)
    return model


# ---------------------------------------------------------------- structure and init
def test_names_shapes_and_tying_match_nanogpt():
    torch, ref = _torch_gpt(GPTConfig(**TINY, bias=True))
    model = _model()
    sd, ref_sd = model.state_dict(), ref.state_dict()
    assert list(sd) == list(ref_sd)
    assert all(sd[k].shape == tuple(ref_sd[k].shape) for k in sd)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" not in dict(model.named_parameters())  # counted once, as torch
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert model.get_num_params() == ref.get_num_params() if hasattr(ref, "get_num_params") \
        else True


def test_initialization():
    fastnn.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=50, n_layer=3, n_head=4, n_embd=64,
                          bias=True))
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith("c_proj.weight"):
            assert abs(v.std() - 0.02 / math.sqrt(6)) < 0.002, k
        elif k.endswith(".bias") and "ln" not in k:
            assert np.all(v == 0), k
        elif "ln" in k:
            assert np.all(v == (1 if k.endswith("weight") else 0)), k
        else:
            assert abs(v.std() - 0.02) < 0.002 and abs(v.mean()) < 0.002, k
    assert all(v.dtype == np.float32 for v in sd.values())


def test_same_seed_same_model():
    a, b, c = _model(seed=3), _model(seed=3), _model(seed=4)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    assert not np.array_equal(a.state_dict()["transformer.wte.weight"],
                              c.state_dict()["transformer.wte.weight"])


# ---------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("bias", [False, True])
def test_logits_loss_and_grads_match_pytorch(cpu_backend, bias):
    cfg = GPTConfig(**TINY, bias=bias)
    torch, ref = _torch_gpt(cfg)
    model = GPT(cfg).double()
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 11, (3, 16))
    targets = rng.integers(0, 11, (3, 16))
    targets[0, 3] = -1  # ignored, as nanoGPT's ignore_index=-1
    with fastnn.use_backend(cpu_backend):
        logits, loss = model(idx, targets)
        loss.backward()
        last, none = model(idx[:, :5])
    ref_logits, ref_loss = ref(torch.tensor(idx), torch.tensor(targets))
    ref_loss.backward()
    assert none is None and last.shape == (3, 1, 11)
    np.testing.assert_allclose(float(loss._data), ref_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(logits._data, ref_logits.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(last._data, ref(torch.tensor(idx[:, :5]))[0].detach().numpy(),
                               rtol=1e-9, atol=1e-12)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, ref_params[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)


def test_float32_training_step_tracks_pytorch(cpu_backend):
    """Three AdamW steps with clipping in float32: the losses stay with PyTorch's."""
    cfg = GPTConfig(**TINY, bias=False)
    torch, ref = _torch_gpt(cfg)
    ref = ref.float()
    model = GPT(cfg)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99))
    ref_opt = torch.optim.AdamW([{"params": [p for p in ref.parameters() if p.dim() >= 2],
                                  "weight_decay": 0.1},
                                 {"params": [p for p in ref.parameters() if p.dim() < 2],
                                  "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.99))
    rng = np.random.default_rng(1)
    with fastnn.use_backend(cpu_backend):
        for _ in range(3):
            x, y = rng.integers(0, 11, (4, 16)), rng.integers(0, 11, (4, 16))
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            fastnn.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            _, ref_loss = ref(torch.tensor(x), torch.tensor(y))
            ref_opt.zero_grad()
            ref_loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
            ref_opt.step()
            np.testing.assert_allclose(float(loss._data), ref_loss.item(), rtol=1e-5)


def test_nanogpt_state_dict_as_numpy_loads():
    """A state dict from PyTorch nanoGPT, as numpy arrays, with torch.compile's prefix and the
    non-flash causal-mask buffers, loads and gives the same logits."""
    cfg = GPTConfig(**TINY, bias=True)
    torch, ref = _torch_gpt(cfg)
    sd = {"_orig_mod." + k: v.numpy().copy() for k, v in ref.state_dict().items()}
    sd["_orig_mod.transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16)))
    model = GPT(cfg).double()
    model.load_state_dict(sd)
    idx = np.random.default_rng(2).integers(0, 11, (2, 9))
    logits, _ = model(idx)
    np.testing.assert_allclose(logits._data, ref(torch.tensor(idx))[0].detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    sd["_orig_mod.lm_head.weight"] = sd["_orig_mod.lm_head.weight"] + 1
    with pytest.raises(ValueError, match="tie"):
        model.load_state_dict(sd)


def test_forward_errors():
    model = _model()
    with pytest.raises(ValueError, match="block size is only 16"):
        model(np.zeros((1, 17), np.int64))
    with pytest.raises(TypeError, match="integers"):
        model(np.zeros((1, 3)))
    with pytest.raises(IndexError):
        model(np.full((1, 3), 11))


# ---------------------------------------------------------------- generation
@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=1.0),
                                dict(temperature=0.7, top_k=3), dict(temperature=1.3, top_p=0.8)])
def test_kv_cache_generation_equals_recomputation(cpu_backend, kw):
    """Past block_size too: the prompt (5) plus 20 new tokens overflows the context of 16."""
    model = _spread_weights(_model()).double()
    idx = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    with fastnn.use_backend(cpu_backend):
        cached = model.generate(idx, 20, generator=np.random.default_rng(5), **kw)
        full = model.generate(idx, 20, generator=np.random.default_rng(5), use_cache=False, **kw)
    assert cached.shape == (2, 25)
    np.testing.assert_array_equal(cached, full)
    np.testing.assert_array_equal(cached[:, :5], idx)


def test_cached_logits_equal_full_forward():
    model = _spread_weights(_model()).double()
    seq = np.random.default_rng(3).integers(0, 11, (2, 16))
    caches = model.new_kv_cache(2, np.float64)
    with fastnn.no_grad():
        got = [model._forward_cached(seq[:, :4], caches)]
        got += [model._forward_cached(seq[:, t:t + 1], caches) for t in range(4, 16)]
        want = [model(seq[:, :t])[0]._data[:, -1] for t in range(4, 17)]
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-10, atol=1e-12)


def test_generation_is_deterministic_for_a_seed():
    model = _spread_weights(_model())
    idx = np.array([[1, 2, 3]])
    fastnn.manual_seed(7)
    a = model.generate(idx, 20)
    fastnn.manual_seed(7)
    b = model.generate(idx, 20)
    fastnn.manual_seed(8)
    c = model.generate(idx, 20)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    greedy = [model.generate(idx, 20, temperature=0, generator=np.random.default_rng(s))
              for s in (1, 2)]
    np.testing.assert_array_equal(*greedy)
    assert isinstance(model.generate(fastnn.tensor(idx), 2), fastnn.Tensor)
    assert model.training  # generate restores the mode


def test_generate_errors():
    model = _model()
    with pytest.raises(ValueError, match="time >= 1"):
        model.generate(np.zeros((1, 0), np.int64), 3)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(np.zeros((1, 1), np.int64), 3, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(np.zeros((1, 1), np.int64), 3, top_p=0)
    # a prompt longer than block_size is cropped to its last block_size tokens, as nanoGPT
    long = np.random.default_rng(0).integers(0, 11, (1, 40))
    out = model.generate(long, 3, temperature=0)
    np.testing.assert_array_equal(out[:, -3:],
                                  model.generate(long[:, -16:], 3, temperature=0)[:, -3:])


def test_sampling_filters():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    ids, p = sample_next(logits, 0, rng=rng)
    assert ids[0] == 0 and np.array_equal(p, [[1, 0, 0, 0]]) and entropy(p)[0] == 0
    _, p = sample_next(logits, 1.0, rng=rng)
    np.testing.assert_allclose(p, [[0.5, 0.3, 0.15, 0.05]])
    _, p = sample_next(logits, 1.0, top_k=2, rng=rng)
    np.testing.assert_allclose(p, [[0.625, 0.375, 0, 0]])
    _, p = sample_next(logits, 1.0, top_p=0.75, rng=rng)  # 0.5 + 0.3 reaches 0.75
    np.testing.assert_allclose(p, [[0.625, 0.375, 0, 0]])
    _, p = sample_next(logits, 1.0, top_p=0.85, rng=rng)
    np.testing.assert_allclose(p, [[0.5, 0.3, 0.15, 0]] / np.float64(0.95))
    # higher temperature, flatter distribution, higher entropy
    ents = [entropy(sample_next(logits, t, rng=rng)[1])[0] for t in (0.5, 1, 2)]
    assert ents[0] < ents[1] < ents[2] < math.log(4)
    # frequencies follow the distribution; zero-probability tokens never come out
    draws = np.array([sample_next(np.repeat(logits, 4000, 0), 1.0, top_k=3,
                                  rng=np.random.default_rng(1))[0]])
    freq = np.bincount(draws.ravel(), minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=0.02)


# ---------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt")
    corpus = textlib.default_corpus()[:20000]
    (d / "text.txt").write_text(corpus, encoding="utf-8")
    args = ["--text", str(d / "text.txt"), "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--block-size", "16", "--batch-size", "4", "--eval-interval", "10", "--eval-iters",
            "2", "--warmup", "5", "--no-progress", "--backend", "numpy"]
    return d, args


def test_train_resume_equals_one_run(trained, capsys):
    """20 steps, then resumed to 30 == 30 steps in one go (min-lr = lr: the cosine decay, which
    depends on the run's length, is flat here)."""
    d, args = trained
    args = args + ["--min-lr", "1e-3"]
    assert gpt_cli.train_main(args + ["--steps", "30", "--out", str(d / "a.npz")]) == 0
    assert gpt_cli.train_main(args + ["--steps", "20", "--out", str(d / "b.npz")]) == 0
    assert gpt_cli.train_main(args + ["--steps", "30", "--resume", str(d / "b.npz"),
                                      "--out", str(d / "c.npz")]) == 0
    out = capsys.readouterr().out
    assert "step 30: train loss" in out and "resuming at step 20" in out
    a, c = fastnn.load(d / "a.npz"), fastnn.load(d / "c.npz")
    for k in a:
        if k.startswith(("model.", "optim.")):
            np.testing.assert_array_equal(a[k], c[k], err_msg=k)
    model, meta = load_checkpoint(d / "a.npz", kind="gpt")
    tok = meta["tokenizer"]
    assert meta["train_state"]["step"] == 30 and meta["optimizer_state"] is not None
    assert model.config.n_embd == 16 and tok.vocab_size == len(set(textlib.default_corpus()[:20000]))
    # the loss went down from log(vocab) at init
    losses = __import__("json").loads(str(a["train.json"]))["losses"]
    assert losses["val"] < math.log(tok.vocab_size) - 0.3


def test_generate_command(trained, capsys):
    d, _ = trained
    ck = str(d / "a.npz")
    base = ["--checkpoint", ck, "--max-new-tokens", "20", "--backend", "numpy"]
    assert gpt_cli.generate_main(base + ["--prompt", "The ", "--temperature", "0"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("The ") and len(first) == len("The ") + 20 + 1
    assert gpt_cli.generate_main(base + ["--prompt", "The ", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == first  # greedy is deterministic
    assert gpt_cli.generate_main(base + ["--prompt", "The ", "--seed", "3"]) == 0
    a = capsys.readouterr().out
    assert gpt_cli.generate_main(base + ["--prompt", "The ", "--seed", "3", "--no-cache"]) == 0
    assert capsys.readouterr().out == a  # same seed, same text; the cache changes nothing
    assert gpt_cli.generate_main(base + ["--prompt", "a", "--temperatures", "0,1.5",
                                         "--top-p", "0.95"]) == 0
    out = capsys.readouterr().out
    assert "temperature 0: mean entropy 0.000" in out and "temperature 1.5: mean entropy" in out


def test_generate_bad_prompts(trained, capsys):
    """Mistakes raise from the command function; the CLI prints one line and exits with 2."""
    d, _ = trained
    base = ["generate", "--checkpoint", str(d / "a.npz"), "--max-new-tokens", "3", "--backend",
            "numpy", "--temperature", "0"]
    with pytest.raises(ValueError, match="never saw"):
        gpt_cli.generate_main(base[1:] + ["--prompt", "año ☃"])
    assert cli_main(base + ["--prompt", "año ☃"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn generate: ") and err.count("\n") == 1
    assert "2 character(s) the model never saw: 'ñ', '☃'" in err and "--replace-unknown" in err
    assert cli_main(base + ["--prompt", "año ☃", "--replace-unknown", " "]) == 0
    assert capsys.readouterr().out.startswith("a o  ")
    assert cli_main(base + ["--prompt", ""]) == 0
    captured = capsys.readouterr()
    assert "starting from a newline" in captured.err and captured.out.startswith("\n")
    assert cli_main(base + ["--prompt", "x" * 10 + "The quick fox is"]) == 0
    captured = capsys.readouterr()
    assert "has 26 characters but the model sees only the last 16" in captured.err
    assert captured.out.startswith("The quick fox is")
    assert cli_main(["generate", "--checkpoint", str(d / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    (d / "junk.npz").write_bytes(b"junk")
    assert cli_main(["generate", "--checkpoint", str(d / "junk.npz")]) == 2
    err = capsys.readouterr().err
    assert "junk.npz" in err and "checkpoint" in err and err.count("\n") == 1
    assert cli_main(["generate", "--checkpoint", str(d / "a.npz"), "--top-k", "0"]) == 2
    assert "--top-k must be >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------- the fused block nodes
def _loss_and_grads(model, batches, fused, **backward_kw):
    from fastnn.models import gpt as gpt_mod
    saved = gpt_mod.FUSED
    gpt_mod.FUSED = fused
    try:
        model.zero_grad()
        losses = [model(x, y)[1] for x, y in batches]
        total = losses[0]
        for l in losses[1:]:
            total = total + l
        total.backward(**backward_kw)
        return total, {n: p.grad._data.copy() for n, p in model.named_parameters()}
    finally:
        gpt_mod.FUSED = saved


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_blocks_equal_the_module_path(dtype, bias):
    """The fused attention/MLP nodes (strided attention, residual on the GEMM, pooled buffers)
    give the module-by-module path's loss and gradients; two forwards before one backward
    (gradient accumulation) keep their own buffers."""
    _needs_fused_blocks()
    model = GPT(GPTConfig(block_size=16, vocab_size=13, n_layer=2, n_head=2, n_embd=24,
                          bias=bias))
    _spread_weights(model)
    if dtype == np.float64:
        model = model.double()
    rng = np.random.default_rng(3)
    batches = [(rng.integers(0, 13, (3, 11)), rng.integers(0, 13, (3, 11))) for _ in range(2)]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    with fastnn.use_backend("cython"):
        for n in (1, 2):
            lf, gf = _loss_and_grads(model, batches[:n], True)
            lm, gm = _loss_and_grads(model, batches[:n], False)
            assert lf._data.dtype == dtype
            np.testing.assert_allclose(lf._data, lm._data, rtol=tol)
            for name in gm:
                scale = max(1e-30, float(np.abs(gm[name]).max()))
                np.testing.assert_allclose(gf[name], gm[name], rtol=tol, atol=tol * scale,
                                           err_msg=name)


def test_fused_blocks_retain_graph_and_pool_reuse():
    """backward twice with retain_graph gives twice the gradient (the pooled buffers stay with
    the graph until it is freed), and a warm step takes no new buffers from the pool."""
    _needs_fused_blocks()
    from fastnn.nn.buffer_pool import POOL
    model, x, y = _model_and_batch(4)
    with fastnn.use_backend("cython"):
        _, once = _loss_and_grads(model, [(x, y)], True)
        model.zero_grad()
        _, loss = model(x, y)
        loss.backward(retain_graph=True)
        model(x, y)   # a forward in between must not take the retained graph's buffers
        loss.backward()
        for n, p in model.named_parameters():
            np.testing.assert_allclose(p.grad._data, 2 * once[n], rtol=1e-5,
                                       atol=1e-6 * float(np.abs(once[n]).max()), err_msg=n)
        del loss
        _loss_and_grads(model, [(x, y)], True)
        before = POOL.allocated
        _loss_and_grads(model, [(x, y)], True)
        assert POOL.allocated == before


# ---------------------------------------------------------------- buffer reuse across steps
_NANO_CPU = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                 bias=False)


def _train_steps(pool_enabled, steps=3, cfg=_NANO_CPU, batch=4):
    from fastnn.nn.buffer_pool import POOL
    model = GPT(GPTConfig(**cfg))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    rng = np.random.default_rng(5)
    x = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))
    y = rng.integers(0, cfg["vocab_size"], (batch, cfg["block_size"]))
    saved, POOL.enabled = POOL.enabled, pool_enabled
    try:
        losses = []
        for _ in range(steps):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss._data))
    finally:
        POOL.enabled = saved
    return losses, {n: p._data.copy() for n, p in model.named_parameters()}


def test_buffer_reuse_changes_no_number():
    """Training steps with the buffer pool on and off give bit-identical losses and weights."""
    _needs_fused_blocks()
    fastnn.manual_seed(0)
    with fastnn.use_backend("cython"):
        fastnn.manual_seed(0)
        on = _train_steps(True)
        fastnn.manual_seed(0)
        off = _train_steps(False)
    assert on[0] == off[0]
    for name in on[1]:
        assert np.array_equal(on[1][name], off[1][name]), name


def test_a_held_block_output_is_never_reused():
    """A fused block's output comes from the pool, but a tensor the user keeps (or a view of
    it) keeps its memory: later steps must not write into it."""
    _needs_fused_blocks()
    model, x, y = _model_and_batch(6)
    with fastnn.use_backend("cython"):
        h = model.transformer.h[0](model._embed(x, 0))
        kept = h[:, 1:]                    # a view: keeps the storage alive alone
        snapshot = kept._data.copy()
        del h
        for _ in range(3):
            model.zero_grad()
            model(x, y)[1].backward()
        np.testing.assert_array_equal(kept._data, snapshot)


def test_a_warm_gpt_step_allocates_little():
    """nanoGPT's CPU configuration: after the first step, the fused blocks take their work
    buffers, outputs, activations and input gradients from the pool, and so does the final
    LayerNorm + lm_head node and the embedding sum's. What a warm step still allocates at its
    peak (0.26 MiB): the cross-entropy gradient (0.19 MiB) and small arrays in the backward.
    (The parameter gradients are new arrays each step too, zero_grad() setting them to None as
    PyTorch's, but the old ones are freed first, so they do not raise the peak.) Before the
    pooled outputs it was 13.2 MiB."""
    _needs_fused_blocks()
    from fastnn.bench.memory import steady_state
    from fastnn.bench.train_cases import gpt_step
    stats = steady_state(gpt_step("cython", _NANO_CPU, 12), steps=2)
    assert stats["pool_new"] == 0
    assert stats["later_growth"] < 256 << 10          # nothing kept from step to step
    assert stats["later_peak"] < 0.5 * 2 ** 20, stats


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_fused_head_gives_the_module_path_bits(backend):
    """Without the cython backend's strided attention the blocks run module by module, but the
    embedding-sum node and the final LayerNorm + lm_head node still run (same kernels, pooled
    buffers): the loss, logits and gradients are bit for bit those of the modules."""
    if backend not in fastnn.available_backends():
        pytest.skip(f"no {backend} backend")
    model = _model()
    _spread_weights(model)
    rng = np.random.default_rng(8)
    x, y = rng.integers(0, 11, (2, 9)), rng.integers(0, 11, (2, 9))
    with fastnn.use_backend(backend):
        lf, gf = _loss_and_grads(model, [(x, y)], True)
        lm, gm = _loss_and_grads(model, [(x, y)], False)
        from fastnn.models import gpt as gpt_mod
        logits = model(x, y)[0]
        gpt_mod.FUSED = False
        try:
            np.testing.assert_array_equal(logits._data, model(x, y)[0]._data)
        finally:
            gpt_mod.FUSED = True
    assert lf._data == lm._data
    for name in gm:
        np.testing.assert_array_equal(gf[name], gm[name], err_msg=name)


def test_the_embedding_node_keeps_the_module_errors():
    """Ids out of range skip the fused embedding sum, so the embedding's own error is raised."""
    model = _model()
    with pytest.raises((IndexError, ValueError)) as fused_err:
        model(np.array([[0, 11]]))
    from fastnn.models import gpt as gpt_mod
    gpt_mod.FUSED = False
    try:
        with pytest.raises((IndexError, ValueError)) as module_err:
            model(np.array([[0, 11]]))
    finally:
        gpt_mod.FUSED = True
    assert str(fused_err.value) == str(module_err.value)
