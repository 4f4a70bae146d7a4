"""A GPT language model in the shape of nanoGPT's model.py (github.com/karpathy/nanoGPT), in one
file, top to bottom: the config, causal self-attention, the MLP, the Block, the GPT, generation.

    from fastnn.models import GPT, GPTConfig
    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128,
                          dropout=0.0, bias=False))
    logits, loss = model(idx, targets)            # idx, targets: int (B, T)
    out = model.generate(idx, 100, temperature=0.8, top_k=20)

Parameter names, shapes and initialization are nanoGPT's, so its state dicts (as numpy arrays or
torch tensors) load with model.load_state_dict(sd): transformer.wte, transformer.wpe,
transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}, transformer.ln_f,
and lm_head, whose weight IS transformer.wte.weight (one Parameter; the state dict lists it under
both names, as PyTorch does).

Each Block is pre-LayerNorm with residual connections:
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)),   mlp = c_proj(gelu(c_fc(x)))

generate() keeps a key/value cache (fastnn.nn.attention.KVCache), so each new token costs one
position's worth of work (O(T) attention) instead of a forward over the whole context. Once the
context is longer than block_size it does what nanoGPT does, a full forward over the last
block_size tokens for each new token (absolute position embeddings shift, so cached keys are no
longer valid); the tokens are the same as without the cache either way.

The reusable pieces come from fastnn.nn: Linear, LayerNorm, Embedding, GELU, Dropout,
F.scaled_dot_product_attention, packed_qkv_attention (attention straight from c_attn's packed
q, k, v output, one autograd node) and KVCache.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import nn
from ..nn import functional as F
from ..nn import attention as _attention
from ..nn.attention import KVCache, packed_qkv_attention, scaled_dot_product_attention
from ..nn.buffer_pool import POOL
from ..optim import AdamW
from ..kernels import trusted as _kernels
from ..tensor import (Tensor, _device_of, _node, _on_gpu, _unbroadcast, arange,
                      default_generator, no_grad)

__all__ = ["GPTConfig", "CausalSelfAttention", "FeedForward", "Block", "GPT", "sample_next",
           "entropy"]


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linears and LayerNorms, as GPT-2

    def to_dict(self):
        return asdict(self)


# ---------------------------------------------------------------- the transformer block
class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: c_attn (C -> 3C, q k v), attention, c_proj (C -> C).

    forward(x, kv_cache=None): with a KVCache, x holds the positions that follow the cached ones
    (incremental decoding, under no_grad)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd {n_embd} is not a multiple of "
                             f"n_head {n_head}")
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head = n_head
        self.n_embd = n_embd
        self.dropout = dropout

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        qkv = self.c_attn(x)
        dropout_p = self.dropout if self.training else 0.0
        if kv_cache is None and dropout_p == 0.0:
            # the common case in one autograd node: no split/view/transpose nodes
            y = packed_qkv_attention(qkv, self.n_head, causal=True)
        else:
            q, k, v = qkv.split(self.n_embd, dim=2)
            shape = (B, T, self.n_head, C // self.n_head)
            q = q.view(*shape).transpose(1, 2)  # (B, nh, T, hs)
            k = k.view(*shape).transpose(1, 2)
            v = v.view(*shape).transpose(1, 2)
            if kv_cache is None:
                y = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:
                y = self._attend_cached(q, k, v, kv_cache)
            y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))

    @staticmethod
    def _attend_cached(q, k, v, kv_cache):
        """New queries over cached + new keys. The new positions come after `past` cached ones,
        so query i may see keys j <= past + i (a bottom-right aligned causal mask)."""
        past, T = kv_cache.length, q.shape[2]
        keys, values = kv_cache.append(k._data, v._data)
        if past == 0:  # prefill: square, PyTorch's top-left is_causal is the right mask
            return scaled_dot_product_attention(q, Tensor(keys), Tensor(values), is_causal=True)
        if T == 1:  # one new token sees every position
            return scaled_dot_product_attention(q, Tensor(keys), Tensor(values))
        mask = np.tri(T, past + T, k=past, dtype=bool)
        return scaled_dot_product_attention(q, Tensor(keys), Tensor(values), attn_mask=mask)


class FeedForward(nn.Module):
    """nanoGPT's MLP, the block's feed-forward part: c_fc (C -> 4C), GELU (exact erf, as
    nn.GELU()), c_proj (4C -> C), dropout. (Named so as not to be confused with
    fastnn.models.MLP, the digits lesson's model; the Block still calls it `mlp`.)"""

    def __init__(self, n_embd, dropout=0.0, bias=True):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-LayerNorm transformer block with residual connections.

    On the CPU, without dropout, KV cache or hooks on the submodules, each half of the block is
    one fused autograd node (_attention_residual, _mlp_residual: x + f(LayerNorm(x))): the
    residual add rides on the output projection's GEMM (beta = 1 onto a copy of x) and its
    gradient is added into the LayerNorm's input gradient in place, attention reads the packed
    q, k, v through strides, c_fc's GEMM applies the GELU in its epilogue, and every array the
    node makes comes from a buffer pool (fastnn.nn.buffer_pool), so a warm training step reuses
    them instead of allocating: the intermediates (LayerNorm output and statistics, qkv, the
    attention output, the pre-activation and GELU output) go back when autograd frees the node,
    the backward's scratch when the backward returns, and the node's output and input gradient
    (POOL.owned) only when nothing references them any more. Same parameters and numbers (to
    float rounding) as the module-by-module path; set fastnn.models.gpt.FUSED = False for that
    one, fastnn.nn.buffer_pool.POOL.enabled = False to allocate everything anew (the same bits)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = FeedForward(n_embd, dropout, bias)

    def forward(self, x, kv_cache=None):
        if kv_cache is None and _fusable(self, x):
            x = _attention_residual(x, self.ln_1, self.attn)
            return _mlp_residual(x, self.ln_2, self.mlp)
        x = x + self.attn(self.ln_1(x), kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x


# ---------------------------------------------------------------- the fused block nodes
FUSED = True   # False: every Block runs module by module (the reference the tests compare with)


def _fusable(block, x):
    if not FUSED or type(x._data) is not np.ndarray or x._data.dtype.kind != "f":
        return False
    a, m = block.attn, block.mlp
    if block.training and (a.dropout or m.dropout.p):
        return False
    if _attention._strided_kernels() is None:
        return False
    if any(ln.normalized_shape != x._data.shape[-1:] for ln in (block.ln_1, block.ln_2)):
        return False
    return not any(mod.__dict__.get("_hooks") for mod in
                   (block.ln_1, block.ln_2, a, a.c_attn, a.c_proj, a.attn_dropout,
                    a.resid_dropout, m, m.c_fc, m.gelu, m.c_proj, m.dropout))


def _ln_forward(x2, ln, lease):
    """LayerNorm of the rows of x2 into the lease's buffers: (z2, backward_state)."""
    w = None if ln.weight is None else ln.weight._data
    b = None if ln.bias is None else ln.bias._data
    M, dt = x2.shape[0], x2.dtype
    z2, mu, rstd = _kernels.layer_norm(x2, w, b, ln.eps, out=(
        lease.take(x2.shape, dt), lease.take((M,), dt), lease.take((M,), dt)))
    return z2, (w, mu, rstd)


def _ln_backward(dz2, x2, state, ln, g2):
    """[dx, dweight?, dbias?] of LayerNorm with the residual's gradient g2 added into dx (in
    place: dx is a pool array of its own, handed on to autograd)."""
    w, mu, rstd = state
    dx, dw, db = _kernels.layer_norm_backward(dz2, x2, w, mu, rstd,
                                              out=POOL.owned(x2.shape, x2.dtype))
    dx += g2
    out = [dx]
    if ln.weight is not None:
        out.append(dw)
    if ln.bias is not None:
        out.append(db)
    return out


def _ln_params(ln):
    return tuple(p for p in (ln.weight, ln.bias) if p is not None)


def _linear_into(x2, weight, bias, out):
    """out (M, N) <- x2 @ weight.T + bias, in place."""
    if bias is None:
        _kernels.gemm(x2, weight, c=out, trans_b=True)
    else:
        out[...] = bias
        _kernels.gemm(x2, weight, c=out, trans_b=True, beta=1.0)


def _residual_linear(x, y2, weight, bias):
    """x + y2 @ weight.T + bias as a (B, T, C) array of the pool's that returns to it when the
    last reference to it dies (the node's output escapes: POOL.owned, never a lease's): the GEMM
    accumulates onto a copy of x."""
    out = POOL.owned(x.shape, x.dtype)
    np.copyto(out, x)
    if bias is not None:
        out += bias
    _kernels.gemm(y2, weight, c=out.reshape(-1, x.shape[-1]), trans_b=True, beta=1.0)
    return out


def _wgrad(dy, x, bias):
    """A linear layer's weight gradient dy^T x and, when it has a bias, the bias gradient
    dy.sum(0) summed while dy is packed for that GEMM (one pass over dy, not two)."""
    if bias:
        return _kernels.gemm_bias_grad(dy, x, trans_a=True, sum_of="a")
    return _kernels.gemm(dy, x, trans_a=True), None


def _bias_parents(*linears):
    return tuple(l.bias for l in linears if l.bias is not None)


def _attention_residual(x, ln, attn):
    """x + c_proj(causal attention(c_attn(ln(x)))), one autograd node over x and the weights."""
    xd = x._data
    B, T, C = xd.shape
    H = attn.n_head
    D, M, dt = C // H, B * T, xd.dtype
    fwd, bwd = _attention._strided_kernels()
    ca, cp = attn.c_attn, attn.c_proj
    wa, wp = ca.weight._data, cp.weight._data
    x2 = np.ascontiguousarray(xd).reshape(M, C)
    lease = POOL.lease()
    z2, ln_state = _ln_forward(x2, ln, lease)
    qkv = lease.take((B, T, 3, H, D), dt)
    _linear_into(z2, wa, None if ca.bias is None else ca.bias._data, qkv.reshape(M, 3 * C))
    y = lease.take((B, T, H, D), dt)
    lse = lease.take((B, H, T), dt)
    heads = _attention._heads
    y4 = y.transpose(0, 2, 1, 3)
    scale = 1.0 / math.sqrt(D)
    fwd(heads(qkv, 0), heads(qkv, 1), heads(qkv, 2), y4, lse, True, scale)
    y2 = y.reshape(M, C)
    out = _residual_linear(xd, y2, wp, None if cp.bias is None else cp.bias._data)

    # lease=lease: the forward's buffers (z2, qkv, y, lse) stay out of the pool for as long as
    # autograd holds this closure (a lease gives its arrays back when it dies, referenced or not)
    def backward(g, lease=lease):
        # this backward's scratch: back to the pool when it returns (a retained graph's next
        # backward makes it again)
        work = POOL.lease()
        g2 = np.ascontiguousarray(g, dtype=dt).reshape(M, C)
        dy = work.take((B, T, H, D), dt)
        _kernels.gemm(g2, wp, c=dy.reshape(M, C))
        dwp, dbp = _wgrad(g2, y2, cp.bias is not None)
        dqkv = work.take((B, T, 3, H, D), dt)
        bwd(dy.transpose(0, 2, 1, 3), heads(qkv, 0), heads(qkv, 1), heads(qkv, 2), y4, lse,
            heads(dqkv, 0), heads(dqkv, 1), heads(dqkv, 2), True, scale)
        d2 = dqkv.reshape(M, 3 * C)
        dz2 = _kernels.gemm(d2, wa, c=work.take((M, C), dt))
        dwa, dba = _wgrad(d2, z2, ca.bias is not None)
        grads = _ln_backward(dz2, x2, ln_state, ln, g2)
        grads[0] = grads[0].reshape(xd.shape)
        grads += [dwa, dwp]
        grads += [db for db in (dba, dbp) if db is not None]
        return grads
    return _node(out, (x,) + _ln_params(ln) + (ca.weight, cp.weight) + _bias_parents(ca, cp),
                 backward, saved=(x,) + _ln_params(ln) + (ca.weight, cp.weight))


_GELU_ACTIVATION = {"none": "gelu", "tanh": "gelu_tanh"}   # nn.GELU's approximate -> gemm_fused's


def _mlp_residual(x, ln, mlp):
    """x + c_proj(gelu(c_fc(ln(x)))), one autograd node over x and the weights."""
    xd = x._data
    C = xd.shape[-1]
    M, dt = xd.size // C, xd.dtype
    fc, pr = mlp.c_fc, mlp.c_proj
    wf, wp = fc.weight._data, pr.weight._data
    approx = mlp.gelu.approximate
    x2 = np.ascontiguousarray(xd).reshape(M, C)
    lease = POOL.lease()
    z2, ln_state = _ln_forward(x2, ln, lease)
    h = lease.take((M, wf.shape[0]), dt)   # the pre-activation, for the backward
    a = lease.take((M, wf.shape[0]), dt)   # gelu(h), for c_proj's weight gradient
    # c_fc and GELU in one GEMM with a fused epilogue that also stores h: the same values as
    # gemm then gelu (the epilogue runs the GELU kernel itself), into the pool's buffers
    _kernels.gemm_fused(z2, wf, a, None if fc.bias is None else fc.bias._data, trans_b=True,
                        activation=_GELU_ACTIVATION[approx], preact=h)
    out = _residual_linear(xd, a, wp, None if pr.bias is None else pr.bias._data)

    def backward(g, lease=lease):   # lease: z2, h, a stay out while autograd holds this
        work = POOL.lease()   # scratch, back to the pool when this returns
        g2 = np.ascontiguousarray(g, dtype=dt).reshape(M, C)
        da = work.take(h.shape, dt)
        _kernels.gemm(g2, wp, c=da)
        dwp, dbp = _wgrad(g2, a, pr.bias is not None)
        dh = _kernels.gelu_backward(da, h, approx, out=work.take(h.shape, dt))
        dz2 = _kernels.gemm(dh, wf, c=work.take((M, C), dt))
        dwf, dbf = _wgrad(dh, z2, fc.bias is not None)
        grads = _ln_backward(dz2, x2, ln_state, ln, g2)
        grads[0] = grads[0].reshape(xd.shape)
        grads += [dwf, dwp]
        grads += [db for db in (dbf, dbp) if db is not None]
        return grads
    return _node(out, (x,) + _ln_params(ln) + (fc.weight, pr.weight) + _bias_parents(fc, pr),
                 backward, saved=(x,) + _ln_params(ln) + (fc.weight, pr.weight))


def _head_fusable(model, x):
    ln, head = model.transformer.ln_f, model.lm_head
    return (FUSED and type(x._data) is np.ndarray and x._data.dtype.kind == "f"
            and head.bias is None and ln.normalized_shape == x._data.shape[-1:]
            and not any(m.__dict__.get("_hooks") for m in (ln, head)))


def _ln_head(x, ln, head):
    """head(ln(x)): the logits (B, T, V), one autograd node over x and the weights. The same
    kernels as ln_f then lm_head module by module (so the same numbers), into the pool's
    buffers: the LayerNorm output is leased, the logits and the input gradient are owned."""
    xd = x._data
    C = xd.shape[-1]
    M, dt = xd.size // C, xd.dtype
    w = head.weight._data
    V = w.shape[0]
    x2 = np.ascontiguousarray(xd).reshape(M, C)
    lease = POOL.lease()
    z2, (lw, mu, rstd) = _ln_forward(x2, ln, lease)
    logits = POOL.owned(xd.shape[:-1] + (V,), dt)
    _kernels.gemm(z2, w, c=logits.reshape(M, V), trans_b=True)

    def backward(g, lease=lease):   # lease: z2, mu, rstd stay out while autograd holds this
        work = POOL.lease()
        g2 = np.ascontiguousarray(g, dtype=dt).reshape(M, V)
        dz2 = _kernels.gemm(g2, w, c=work.take((M, C), dt))
        dw = _kernels.gemm(g2, z2, trans_a=True)
        dx, dlw, dlb = _kernels.layer_norm_backward(dz2, x2, lw, mu, rstd,
                                                    out=POOL.owned(x2.shape, dt))
        grads = [dx.reshape(xd.shape)]
        grads += [d for p, d in ((ln.weight, dlw), (ln.bias, dlb)) if p is not None]
        return grads + [dw]
    return _node(logits, (x,) + _ln_params(ln) + (head.weight,), backward,
                 saved=(x,) + _ln_params(ln) + (head.weight,))


def _embed_fusable(model, ids, start):
    t = model.transformer
    w = t.wte.weight._data
    return (FUSED and type(ids) is np.ndarray and ids.ndim == 2 and ids.size
            and type(w) is np.ndarray and w.dtype.kind == "f" and t.wpe.weight._data.dtype == w.dtype
            and t.wte.padding_idx is None and t.wpe.padding_idx is None
            and (not t.drop.training or t.drop.p == 0.0)
            and 0 <= start and start + ids.shape[1] <= t.wpe.weight._data.shape[0]
            and not any(m.__dict__.get("_hooks") for m in (t.wte, t.wpe, t.drop))
            and ids.min() >= 0 and ids.max() < w.shape[0])   # else the module path's errors


def _embed_sum(ids, start, wte, wpe):
    """Token plus position embeddings (B, T, C), one autograd node: the same gather, add and
    backward kernels as wte(ids) + wpe(pos) module by module, written into an owned pool
    array. (np.take in 'clip' mode: the ids were checked in range, and 'raise' would buffer.)"""
    w, p = wte._data, wpe._data
    B, T = ids.shape
    C = w.shape[1]
    out = POOL.owned((B, T, C), w.dtype)
    np.take(w, ids, axis=0, out=out, mode="clip")
    out += p[start:start + T]
    pos = np.arange(start, start + T)

    def backward(g):
        return (_kernels.embedding_backward(g, ids, w.shape[0]),
                _kernels.embedding_backward(_unbroadcast(g, (T, C)), pos, p.shape[0]))
    return _node(out, (wte, wpe), backward)


# ---------------------------------------------------------------- the model
def _ids(x):
    data = x._data if isinstance(x, Tensor) else np.asarray(x)
    if data.dtype.kind not in "iu":
        raise TypeError(f"GPT: token ids must be integers, got dtype {data.dtype}")
    return data


class GPT(nn.Module):
    """Token and position embeddings, n_layer Blocks, a final LayerNorm and the language-model
    head (tied to the token embeddings)."""

    def __init__(self, config):
        super().__init__()
        if config.vocab_size is None or config.block_size is None:
            raise ValueError("GPTConfig needs vocab_size and block_size")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config.n_embd, config.n_head, config.dropout, config.bias)
                             for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one Parameter
        self.apply(self._init_weights)
        # GPT-2's scaled init of the projections into the residual stream
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding=True):
        """Parameters, counted once; without the position embeddings by default (nanoGPT's
        convention: the token embeddings count, being the output layer too)."""
        n = sum(p._data.size for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight._data.size
        return n

    # ------------------------------------------------------------ forward
    def forward(self, idx, targets=None):
        """idx int (B, T) -> (logits, loss). With targets (B, T) (-1 = ignore): logits of every
        position (B, T, V) and the mean cross-entropy; without: logits (B, 1, V) of the last
        position and loss None."""
        ids = _ids(idx)
        if ids.ndim != 2:
            raise ValueError(f"GPT: idx must be (batch, time), got shape {ids.shape}")
        b, t = ids.shape
        if t > self.config.block_size:
            raise ValueError(f"GPT: cannot forward a sequence of length {t}, block size is only "
                             f"{self.config.block_size}")
        x = self._embed(ids, 0)
        for block in self.transformer.h:
            x = block(x)
        if targets is not None:
            if _head_fusable(self, x):
                logits = _ln_head(x, self.transformer.ln_f, self.lm_head)
            else:
                logits = self.lm_head(self.transformer.ln_f(x))
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]),
                                   _ids(targets).reshape(-1), ignore_index=-1)
        else:
            x = self.transformer.ln_f(x)
            logits = self.lm_head(x[:, [-1], :])  # the list index keeps the time dim
            loss = None
        return logits, loss

    def _embed(self, ids, start):
        if _embed_fusable(self, ids, start):
            return _embed_sum(ids, start, self.transformer.wte.weight, self.transformer.wpe.weight)
        tok_emb = self.transformer.wte(ids)
        if _on_gpu(ids):   # positions made on the ids' GPU: no host copy per step
            pos = arange(start, start + ids.shape[1], device=_device_of(ids))._data
        else:
            pos = np.arange(start, start + ids.shape[1])
        pos_emb = self.transformer.wpe(pos)
        return self.transformer.drop(tok_emb + pos_emb)

    def _forward_cached(self, ids, caches):
        """Logits (B, V) of the last of ids (B, T), which follow the cached positions."""
        x = self._embed(ids, caches[0].length)
        for block, cache in zip(self.transformer.h, caches):
            x = block(x, cache)
        x = self.transformer.ln_f(x[:, -1, :])
        return self.lm_head(x)._data

    def new_kv_cache(self, batch_size, dtype=None):
        c = self.config
        w = self.lm_head.weight._data
        dtype = dtype or w.dtype
        return [KVCache(batch_size, c.n_head, c.block_size, c.n_embd // c.n_head, dtype, like=w)
                for _ in range(c.n_layer)]

    # ------------------------------------------------------------ optimizer (nanoGPT's groups)
    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type=None,
                             eps=1e-8):
        """nanoGPT's optimizer: AdamW with weight decay on the parameters of 2 or more
        dimensions (matmul weights, embeddings) and none on the others (biases, LayerNorm
        weights). device_type ('cpu', 'cuda') is nanoGPT's argument: the update is the same."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p._data.ndim >= 2]
        nodecay = [p for p in params if p._data.ndim < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}]
        if nodecay:
            groups.append({"params": nodecay, "weight_decay": 0.0})
        return AdamW(groups, lr=learning_rate, betas=betas, eps=eps)

    # ------------------------------------------------------------ state dicts from nanoGPT
    def load_state_dict(self, state_dict, strict=True):
        """As Module.load_state_dict, also accepting nanoGPT's extras: the '_orig_mod.' prefix of
        torch.compile'd models and the causal-mask buffers '.attn.bias' of non-flash nanoGPT."""
        sd = {}
        for k, v in state_dict.items():
            if k.startswith("_orig_mod."):
                k = k[len("_orig_mod."):]
            if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
                continue
            sd[k] = v
        if "lm_head.weight" in sd and "transformer.wte.weight" in sd:
            a, b = np.asarray(_np(sd["lm_head.weight"])), np.asarray(_np(sd["transformer.wte.weight"]))
            if a.shape == b.shape and not np.array_equal(a, b):
                raise ValueError("GPT.load_state_dict: lm_head.weight and transformer.wte.weight "
                                 "differ, but this GPT ties them (one parameter)")
        return super().load_state_dict(sd, strict=strict)

    # ------------------------------------------------------------ generation
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 generator=None, use_cache=True):
        """Append max_new_tokens sampled tokens to idx (B, T) and return the whole sequence
        (a Tensor if idx is one, else a numpy array). temperature 0 is greedy (argmax) decoding;
        top_k keeps the k most likely tokens, top_p the smallest set whose probability reaches
        top_p. generator: a numpy Generator (default: fastnn's, seeded by manual_seed).

        On a GPU the tokens are sampled there and the sequence grows there: nothing is copied
        to the host per token (the result is on idx's device)."""
        ids = _ids(idx)
        for _, _, ids in self._sample_steps(ids, max_new_tokens, temperature, top_k, top_p,
                                            generator, use_cache):
            pass
        if isinstance(idx, Tensor):
            return Tensor(ids).to(idx.device)
        return ids.cpu()._data if _on_gpu(ids) else ids

    def generate_stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                        generator=None, use_cache=True):
        """Yield (next_ids (B,), probs (B, V)) for each new token, probs being the distribution
        it was drawn from (after temperature, top-k and top-p; one-hot when greedy).

        next_ids is a host int64 array; on a GPU it is the one copy to the host a token costs,
        and probs is a device array (the sampling ran there; reading it on the host copies)."""
        for nxt, probs, _ in self._sample_steps(_ids(idx), max_new_tokens, temperature, top_k,
                                                top_p, generator, use_cache):
            yield (Tensor(nxt).cpu()._data if _on_gpu(nxt) else nxt), probs

    def _sample_steps(self, ids, max_new_tokens, temperature, top_k, top_p, generator,
                      use_cache):
        """Yield (next_ids, probs, ids so far) per new token, on the model's device: a prompt
        on the host goes to a GPU model once, and sampling runs there (sample_next)."""
        w = self.lm_head.weight._data
        if _on_gpu(w):
            ids = Tensor(ids).to(_device_of(w))._data.astype(np.int64).contiguous()
        else:
            ids = np.ascontiguousarray(Tensor(ids).cpu()._data if _on_gpu(ids) else ids,
                                       dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"generate: idx must be (batch, time) with time >= 1, got shape "
                             f"{ids.shape}; start an empty prompt from some token, e.g. a newline")
        _check_sampling(temperature, top_k, top_p)
        rng = generator if generator is not None else default_generator()
        block = self.config.block_size
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                caches = None
                for _ in range(max_new_tokens):
                    if use_cache and ids.shape[1] <= block:
                        if caches is None:  # prefill with the whole prompt
                            caches = self.new_kv_cache(ids.shape[0])
                            logits = self._forward_cached(ids, caches)
                        else:
                            logits = self._forward_cached(ids[:, -1:], caches)
                    else:  # past block_size: recompute on the cropped window, as nanoGPT
                        logits = self(Tensor(ids[:, -block:]))[0]._data[:, -1, :]
                    nxt, probs = sample_next(logits, temperature, top_k, top_p, rng)
                    ids = np.concatenate([ids, nxt[:, None]], axis=1)
                    yield nxt, probs, ids
        finally:
            self.train(was_training)


def _np(v):
    if isinstance(v, Tensor):
        return v._data
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return v


def _check_sampling(temperature, top_k, top_p):
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """Draw one token per row of logits (B, V). Returns (ids int64 (B,), probs (B, V) float64),
    probs being the distribution sampled from: softmax(logits / temperature) restricted to the
    top_k tokens and then to the top_p nucleus, renormalized; one-hot at the argmax when
    temperature is 0.

    Device logits (a GPU model's) are sampled on the device, ids and probs device arrays: the
    uniforms come from the device's Philox stream, seeded by one draw from rng, so a seed
    repeats the tokens, but they are other tokens than the CPU's (as in PyTorch)."""
    from ..kernels.on_device import on_device   # (device arrays made outside a Tensor too)
    _check_sampling(temperature, top_k, top_p)
    on_gpu = on_device(logits)
    logits = logits.astype(np.float64) if on_gpu else np.asarray(logits, np.float64)
    b, v = logits.shape
    if temperature == 0:
        ids = logits.argmax(axis=1)
        probs = np.zeros_like(logits)
        np.put_along_axis(probs, ids[:, None], 1.0, axis=1)
        return ids.astype(np.int64), probs
    z = logits / temperature
    if top_k is not None and top_k < v:
        kth = _kernels.topk(z, int(top_k))[0][:, -1:]   # each row's k-th largest value
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely tokens
        drop_sorted = before >= top_p                    # the first token always stays
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=1)
        probs = np.where(drop, 0.0, probs)
        probs /= probs.sum(axis=1, keepdims=True)
    rng = rng if rng is not None else default_generator()
    if on_gpu:
        from ..tensor import rand
        u = rand(b, dtype=np.float64, device=f"cuda:{logits.device_index}", generator=rng)._data
    else:
        u = rng.random(b)
    # inverse CDF with u in (0, 1]: a zero-probability token can never be picked
    cdf = np.cumsum(probs, axis=1)
    u = (1.0 - u) * cdf[:, -1]
    ids = np.minimum((cdf < u[:, None]).sum(axis=1), v - 1)
    return ids.astype(np.int64), probs


def entropy(probs):
    """Shannon entropy in nats of each row of probs (B, V) -> (B,) (on probs' device)."""
    from ..kernels.on_device import on_device
    p = probs.astype(np.float64) if on_device(probs) else np.asarray(probs, np.float64)
    return (-p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)   # 0 log 0 = 0, no NaN made
