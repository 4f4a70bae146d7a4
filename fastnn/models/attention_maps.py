"""What a GPT's heads attend to: the attention weights of every layer and head for one sequence.

    weights = attention_weights(model, ids)        # (n_layer, n_head, T, T), rows sum to 1

The model's own forward fuses attention into one kernel and never keeps the weights, so this
replays the blocks with their own modules (ln_1, c_attn, the block itself) and computes
softmax(q k^T / sqrt(head size)) with the causal mask alongside; the block outputs are the
model's, so each layer sees exactly what it sees in generation.
"""
import numpy as np

from ..tensor import Tensor, no_grad
from .gpt import GPT

__all__ = ["attention_weights", "save_attention_figure"]


def attention_weights(model, ids):
    """Attention weights (n_layer, n_head, T, T) float64 of a GPT on one sequence ids (T,) or
    (1, T): entry [l, h, i, j] is how much position i's query in layer l, head h attends to
    position j (0 for j > i, the causal mask)."""
    if not isinstance(model, GPT):
        raise TypeError(f"attention_weights: expected a fastnn.models.GPT, got "
                        f"{type(model).__name__}")
    ids = np.asarray(ids._data if isinstance(ids, Tensor) else ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] < 1:
        raise ValueError(f"attention_weights: expected one sequence (T,) or (1, T), got shape "
                         f"{ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"attention_weights: token ids must be integers, got {ids.dtype}")
    t = ids.shape[1]
    cfg = model.config
    if t > cfg.block_size:
        raise ValueError(f"attention_weights: {t} tokens, but the model's context is "
                         f"{cfg.block_size}")
    hs = cfg.n_embd // cfg.n_head
    causal = np.tril(np.ones((t, t), bool))
    out = np.zeros((cfg.n_layer, cfg.n_head, t, t))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            tr = model.transformer
            x = tr.wte(ids) + tr.wpe(np.arange(t))
            for layer, block in enumerate(tr.h):
                qkv = block.attn.c_attn(block.ln_1(x))._data[0].astype(np.float64)  # (T, 3C)
                q, k = qkv[:, :cfg.n_embd], qkv[:, cfg.n_embd:2 * cfg.n_embd]
                q = q.reshape(t, cfg.n_head, hs).transpose(1, 0, 2)             # (H, T, hs)
                k = k.reshape(t, cfg.n_head, hs).transpose(1, 0, 2)
                scores = q @ k.transpose(0, 2, 1) / np.sqrt(hs)
                scores = np.where(causal, scores, -np.inf)
                scores -= scores.max(axis=-1, keepdims=True)
                w = np.exp(scores)
                out[layer] = w / w.sum(axis=-1, keepdims=True)
                x = block(x)
    finally:
        model.train(was_training)
    return out


def save_attention_figure(model, ids, tokens, path, layer=None):
    """Draw every head's attention for one sequence (all layers, or one) and write a PNG; the
    CLI's `fastnn generate --show-attention FILE.png`. Returns the path."""
    from .. import viz

    w = attention_weights(model, ids)
    layers = range(w.shape[0]) if layer is None else [int(layer)]
    maps = np.concatenate([w[i] for i in layers])
    titles = [f"layer {i}, head {h}" for i in layers for h in range(w.shape[1])]
    viz.attention_heatmaps(maps, list(tokens), titles=titles, ncols=w.shape[1], path=path,
                           title="attention: row = the character being written, column = the "
                                 "earlier character it looks at")
    return path
