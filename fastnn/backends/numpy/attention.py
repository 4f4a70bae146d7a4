"""Reference attention: the score matrix materialized, the baseline the fused kernels beat."""
import numpy as np


# ---------------------------------------------------------------- attention
def attention(q, k, v, causal, scale):
    """softmax(q k^T * scale [+ causal mask]) v on (B, H, T, D); also returns the log-sum-exp (B, H, T).

    causal masks key j > query i (top-left aligned, as PyTorch's is_causal). The T x S score matrix
    is materialized: this is the naive baseline that the fused kernels beat.
    """
    s = (q @ k.transpose(0, 1, 3, 2)) * scale
    if causal:
        t, n = s.shape[-2:]
        s = np.where(np.tril(np.ones((t, n), dtype=bool)), s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    e = np.exp(s - mx)
    ssum = e.sum(axis=-1, keepdims=True)
    out = (e / ssum) @ v
    lse = (mx + np.log(ssum))[..., 0]
    return out.astype(q.dtype), lse.astype(q.dtype)


def attention_backward(dout, q, k, v, out, lse, causal, scale):
    s = (q @ k.transpose(0, 1, 3, 2)) * scale
    if causal:
        t, n = s.shape[-2:]
        s = np.where(np.tril(np.ones((t, n), dtype=bool)), s, -np.inf)
    p = np.exp(s - lse[..., None])
    dv = p.transpose(0, 1, 3, 2) @ dout
    dp = dout @ v.transpose(0, 1, 3, 2)
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    dq = ds @ k * scale
    dk = ds.transpose(0, 1, 3, 2) @ q * scale
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)
