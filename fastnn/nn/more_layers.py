"""More layers from torch.nn that programs use, with PyTorch's arguments and state-dict keys:
nn.EmbeddingBag (sum / mean / max over bags given by offsets, or by the rows of a 2-D input),
nn.LocalResponseNorm, nn.AdaptiveMaxPool1d/2d, nn.Softmax2d, nn.Dropout1d, nn.Unfold / nn.Fold,
nn.Bilinear, nn.MaxUnpool1d/2d.

EmbeddingBag (a gather and a segment reduction forward, a scatter-add backward) and max_unpool
(a scatter forward, a gather backward) are each one autograd node; the others are Tensor ops or
existing kernels, so autograd gives their gradients.
Unfold (im2col) is a grouped convolution with one-hot kernels, one output channel per (channel,
kernel position), and Fold, its adjoint, the transposed convolution with the same kernels."""
import math

import numpy as np

from ..tensor import Tensor, _device, _dtype, _node, cat, einsum, get_default_dtype, stack
from . import functional as F
from . import init
from .modules import Module, Parameter

__all__ = ["EmbeddingBag", "LocalResponseNorm", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "Softmax2d", "Dropout1d", "Unfold", "Fold", "Bilinear", "MaxUnpool1d", "MaxUnpool2d"]
FUNCTIONS = ["embedding_bag", "local_response_norm", "adaptive_max_pool1d",
             "adaptive_max_pool2d", "dropout1d", "unfold", "fold", "bilinear", "max_unpool1d",
             "max_unpool2d"]


# ---------------------------------------------------------------- EmbeddingBag
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Reduce bags of embedding rows, as torch.nn.functional.embedding_bag: input 1-D indices
    with offsets (where each bag starts), or 2-D (each row a bag, offsets None)."""
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding_bag: max_norm and scale_grad_by_freq are not "
                                  "supported")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    idx = np.asarray(input._data if isinstance(input, Tensor) else input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding_bag: input must hold integer indices, got {idx.dtype}")
    w = weight._data
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated "
                             "is a mini-batch of fixed length sequences.")
        starts = np.arange(0, idx.size, idx.shape[1]) if idx.shape[1] else \
            np.zeros(idx.shape[0], np.int64)
        flat = idx.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        starts = np.asarray(offsets._data if isinstance(offsets, Tensor) else offsets,
                            np.int64).reshape(-1)
        if include_last_offset:
            starts = starts[:-1]
        flat = idx
        if starts.size and (starts[0] != 0 or np.any(np.diff(starts) < 0)
                            or starts[-1] > flat.size):
            raise ValueError("offsets must start at 0, be non-decreasing and stay within input")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{idx.ndim}")
    if flat.size and (flat.min() < 0 or flat.max() >= w.shape[0]):
        raise IndexError(f"embedding_bag: an index is out of range for {w.shape[0]} rows")
    psw = None
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError("embedding_bag: per_sample_weights was not None. "
                                      "per_sample_weights is only supported for mode='sum'")
        psw = per_sample_weights._data.reshape(-1).astype(w.dtype, copy=False)
    n_bags = starts.size
    bag = np.repeat(np.arange(n_bags), np.diff(np.append(starts, flat.size)))
    keep = np.ones(flat.size, bool) if padding_idx is None else flat != padding_idx
    rows = w[flat] * keep[:, None]
    if psw is not None:
        rows = rows * psw[:, None]
    counts = np.bincount(bag[keep], minlength=n_bags).astype(w.dtype)
    out = np.zeros((n_bags, w.shape[1]), w.dtype)
    argmax = None
    if mode == "max":
        out[...] = -np.inf
        np.maximum.at(out, bag[keep], rows[keep])
        out[counts == 0] = 0
        # the row each maximum came from, for backward: the first position holding it
        hit = (rows == out[bag]) & keep[:, None]
        pos = np.where(hit, np.arange(flat.size)[:, None], flat.size)
        argmax = np.full((n_bags, w.shape[1]), flat.size)
        np.minimum.at(argmax, bag, pos)
    else:
        np.add.at(out, bag, rows)
        if mode == "mean":
            out /= np.maximum(counts, 1)[:, None]
    parents = (weight,) if psw is None else (weight, per_sample_weights)

    def backward(g):
        g = np.asarray(g, w.dtype)
        dw = np.zeros_like(w)
        if mode == "max":
            valid = argmax < flat.size
            bags, cols = np.nonzero(valid)
            np.add.at(dw, (flat[argmax[bags, cols]], cols), g[bags, cols])
            return (dw,)
        gr = g[bag] * keep[:, None]
        if mode == "mean":
            gr = gr / np.maximum(counts, 1)[bag][:, None]
        if psw is not None:
            dpsw = (gr * w[flat]).sum(1).reshape(per_sample_weights._data.shape)
            gr = gr * psw[:, None]
            np.add.at(dw, flat, gr)
            return dw, dpsw
        np.add.at(dw, flat, gr)
        return (dw,)
    return _node(out, parents, backward)


class EmbeddingBag(Module):
    """Sums, means or maxes of bags of embeddings, as torch.nn.EmbeddingBag (weight N(0, 1))."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, device=None, dtype=None):
        super().__init__()
        _device(device)
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.mode = mode
        self.sparse = sparse
        self.include_last_offset = include_last_offset
        if padding_idx is not None and padding_idx < 0:
            padding_idx += num_embeddings
        self.padding_idx = padding_idx
        dtype = _dtype(dtype) or get_default_dtype()
        if _weight is None:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype))
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, input, offsets=None, per_sample_weights=None):
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type,
                             self.scale_grad_by_freq, self.mode, self.sparse,
                             per_sample_weights, self.include_last_offset, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}"


# ---------------------------------------------------------------- local response norm
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels)^beta, as
    torch.nn.functional.local_response_norm (channels are dim 1)."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} "
                         f"dimensions)")
    if input.shape[0] == 0:
        return input
    c = input.shape[1]
    sq = input * input
    lo, hi = size // 2, (size - 1) // 2
    zeros = lambda n: Tensor(np.zeros((input.shape[0], n) + tuple(input.shape[2:]),  # noqa: E731
                                      input._data.dtype))
    padded = cat([t for t in (zeros(lo) if lo else None, sq, zeros(hi) if hi else None)
                  if t is not None], 1)
    div = padded[:, 0:c]
    for j in range(1, size):
        div = div + padded[:, j:j + c]
    div = (div * (alpha / size) + k) ** beta
    return input / div


class LocalResponseNorm(Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


# ---------------------------------------------------------------- adaptive max pooling
def _bins(n_in, n_out):
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive 2-D max pooling (bins as adaptive_avg_pool2d's), as torch's; no indices."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices is not supported")
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_max_pool2d: expected 3-D or 4-D input, got {input.ndim}-D")
    h, w = input.shape[-2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = h if oh is None else oh, w if ow is None else ow
    rows = []
    for y0, y1 in _bins(h, oh):
        rows.append(stack([input[..., y0:y1, x0:x1].amax((-2, -1)) for x0, x1 in _bins(w, ow)],
                          -1))
    return stack(rows, -2)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Adaptive 1-D max pooling, as torch's; no indices."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool1d: return_indices is not supported")
    if input.ndim not in (2, 3):
        raise ValueError(f"adaptive_max_pool1d: expected 2-D or 3-D input, got {input.ndim}-D")
    size = output_size if isinstance(output_size, int) else output_size[0]
    return stack([input[..., a:b].amax(-1) for a, b in _bins(input.shape[-1], size)], -1)


class AdaptiveMaxPool2d(Module):
    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    def forward(self, input):
        return adaptive_max_pool1d(input, self.output_size, self.return_indices)


# ---------------------------------------------------------------- softmax2d, dropout1d
class Softmax2d(Module):
    """Softmax over the channels of (N, C, H, W) or (C, H, W), as torch.nn.Softmax2d."""

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.ndim}D "
                             f"instead")
        return F.softmax(input, -3)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) with probability p, as
    torch.nn.functional.dropout1d."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D "
                           f"input")
    batched = input.ndim == 3
    x = input if batched else input.unsqueeze(0)
    y = F.dropout2d(x.unsqueeze(-1), p, training).squeeze(-1)
    return y if batched else y.squeeze(0)


class Dropout1d(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return dropout1d(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"



# ---------------------------------------------------------------- unfold / fold
def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(e) for e in v)


def _one_hot_kernels(channels, kernel, dtype):
    """(C kh kw, 1, kh, kw): output channel c kh kw + j reads kernel position j of channel c."""
    kk = kernel[0] * kernel[1]
    eye = np.eye(kk, dtype=dtype).reshape(kk, 1, *kernel)
    return Tensor(np.tile(eye, (channels, 1, 1, 1)))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks of (N, C, H, W) as columns: (N, C kh kw, L), as
    torch.nn.functional.unfold."""
    if input.ndim not in (3, 4):
        raise ValueError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                         f"{input.ndim}D)")
    batched = input.ndim == 4
    x = input if batched else input.unsqueeze(0)
    k = _pair(kernel_size)
    c = x.shape[1]
    cols = F.conv2d(x, _one_hot_kernels(c, k, x._data.dtype), None, _pair(stride),
                    _pair(padding), _pair(dilation), c)
    cols = cols.reshape(x.shape[0], c * k[0] * k[1], -1)
    return cols if batched else cols.squeeze(0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: columns (N, C kh kw, L) summed back into (N, C, H, W), as
    torch.nn.functional.fold."""
    if input.ndim not in (2, 3):
        raise ValueError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are "
                         f"supported (got {input.ndim}D)")
    batched = input.ndim == 3
    x = input if batched else input.unsqueeze(0)
    k, out = _pair(kernel_size), _pair(output_size)
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    if x.shape[1] % (k[0] * k[1]):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the "
                           f"product of kernel_size, but got input.size(1)={x.shape[1]} and "
                           f"kernel_size={k}")
    c = x.shape[1] // (k[0] * k[1])
    blocks = [(out[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
    if blocks[0] * blocks[1] != x.shape[2]:
        raise RuntimeError(f"Given output_size={out}, kernel_size={k}, dilation={d}, "
                           f"padding={p}, stride={s}, expected size of input's dimension 2 to "
                           f"match the calculated number of sliding blocks {blocks[0]} * "
                           f"{blocks[1]} = {blocks[0] * blocks[1]}, but got "
                           f"input.size(2)={x.shape[2]}.")
    smallest = [(blocks[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(2)]
    y = F.conv_transpose2d(x.reshape(x.shape[0], x.shape[1], *blocks),
                           _one_hot_kernels(c, k, x._data.dtype), None, s, p,
                           (out[0] - smallest[0], out[1] - smallest[1]), c, d)
    return y if batched else y.squeeze(0)


class Unfold(Module):
    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = \
            kernel_size, dilation, padding, stride

    def forward(self, input):
        return unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(Module):
    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        return fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                    self.stride)


# ---------------------------------------------------------------- bilinear
def bilinear(input1, input2, weight, bias=None):
    """y_o = x1^T W_o x2 + b_o over the last dims, as torch.nn.functional.bilinear."""
    y = einsum("...i,oij,...j->...o", input1, weight, input2)
    return y if bias is None else y + bias


class Bilinear(Module):
    """As torch.nn.Bilinear: weight (out, in1, in2) and bias (out,), U(-1/sqrt(in1),
    1/sqrt(in1))."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__()
        _device(device)
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        dtype = _dtype(dtype) or get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


# ---------------------------------------------------------------- max unpooling
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Put each value back at its max_pool2d index (h * W + w in its plane), zeros elsewhere,
    as torch.nn.functional.max_unpool2d."""
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p = _pair(padding)
    x = input._data
    if x.ndim not in (3, 4):
        raise ValueError(f"max_unpool2d: expected 3-D or 4-D input, got {x.ndim}-D")
    idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices, np.int64)
    if idx.shape != x.shape:
        raise ValueError(f"max_unpool2d: indices of shape {idx.shape} do not match the input "
                         f"{x.shape}")
    if output_size is None:
        out = tuple((x.shape[-2 + i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(2))
    else:
        out = tuple(int(v) for v in list(output_size)[-2:])
    plane = out[0] * out[1]
    lead = x.shape[:-2]
    flat_x = x.reshape(-1, x.shape[-2] * x.shape[-1])
    flat_i = idx.reshape(flat_x.shape)
    if flat_i.size and (flat_i.min() < 0 or flat_i.max() >= plane):
        raise ValueError(f"max_unpool2d: found an invalid max index (the output has {plane} "
                         f"positions per plane)")
    rows = np.arange(flat_x.shape[0])[:, None]
    y = np.zeros((flat_x.shape[0], plane), x.dtype)
    y[rows, flat_i] = flat_x

    def backward(g):
        return (np.asarray(g).reshape(-1, plane)[rows, flat_i].reshape(x.shape),)
    return _node(y.reshape(lead + out), (input,), backward)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """max_unpool2d over (N, C, L) viewed as (N, C, 1, L)."""
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    st = k if stride is None else (stride if isinstance(stride, int) else stride[0])
    pd = padding if isinstance(padding, int) else padding[0]
    size = None if output_size is None else (1, int(list(output_size)[-1]))
    idx = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    return max_unpool2d(input.unsqueeze(-2), Tensor(np.asarray(idx)[..., None, :]), (1, k),
                        (1, st), (0, pd), size).squeeze(-2)


class MaxUnpool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input, indices, output_size=None):
        return max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                            output_size)


class MaxUnpool1d(MaxUnpool2d):
    def forward(self, input, indices, output_size=None):
        return max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding,
                            output_size)
