"""Embedding gather and its scatter-add backward. C: csrc/ops_embedding.c."""
import numpy as np

from ..registry import Bench, Gradient, declare
from .._checks import (_FLOATS, _at_least_1d, _check_range, _float_array, _gemm_operand,
                       _index_array, _ndim, _rows, _same_shape, get_backend, ready, resolve)
from . import examples as ex


# ---------------------------------------------------------------- embedding
@declare(family="embedding", signature="embedding(weight (V, C), ids int64 (N,) in [0, V)) -> (N, C)", examples=ex.embedding, bench=Bench("embedding"))
def embedding(weight, ids, *, backend=None):
    """Row gather: weight (V, C) indexed by integer ids of any shape -> ids.shape + (C,)."""
    be = resolve(backend)
    weight = _float_array("embedding", "weight", weight)
    _ndim("embedding", "weight", weight, 2)
    ids = _index_array("embedding", "ids", ids)
    _check_range("embedding", "ids", ids, weight.shape[0])
    flat = ids.reshape(-1)
    if flat.size == 0 or weight.shape[1] == 0:
        return np.zeros(ids.shape + (weight.shape[1],), weight.dtype)
    return be.embedding(weight, flat).reshape(ids.shape + (weight.shape[1],))


@declare(family="embedding", signature="embedding_backward(dout (N, C), ids int64 (N,) in [0, V), V) -> (V, C)", examples=ex.embedding_backward)
def embedding_backward(dout, ids, num_embeddings, *, backend=None):
    """Scatter-add: dweight[ids[i]] += dout[i]; dout is ids.shape + (C,). Returns (V, C)."""
    be = resolve(backend)
    dout = _float_array("embedding_backward", "dout", dout)
    ids = _index_array("embedding_backward", "ids", ids)
    if dout.shape[:-1] != ids.shape or dout.ndim != ids.ndim + 1:
        raise ValueError(f"embedding_backward: dout has shape {dout.shape}, expected "
                         f"{ids.shape} + (C,)")
    num_embeddings = int(num_embeddings)
    if num_embeddings < 0:
        raise ValueError("embedding_backward: num_embeddings must be >= 0")
    _check_range("embedding_backward", "ids", ids, num_embeddings)
    c = dout.shape[-1]
    if ids.size == 0 or c == 0:
        return np.zeros((num_embeddings, c), dout.dtype)
    return be.embedding_backward(dout.reshape(-1, c), ids.reshape(-1), num_embeddings)


