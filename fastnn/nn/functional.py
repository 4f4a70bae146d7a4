"""fastnn.nn.functional: PyTorch's functional API, every forward and backward on fastnn.kernels.

Each function runs one forward kernel and records a closure that calls its backward partner
(kernels.relu -> kernels.relu_backward, gemm -> two gemms, cross_entropy's fused gradient, ...).
"""
import numpy as np

from ..kernels import trusted as T
from ..tensor import (Tensor, _asarray, _ascontiguous, _device_of, _empty, _moved, _node,
                      _on_gpu, _random_on_device, _same_device, default_generator, gelu,
                      leaky_relu as _leaky_relu, log_softmax, relu as _relu, sigmoid, softmax,
                      tanh)

__all__ = ["linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax",
           "cross_entropy", "mse_loss", "layer_norm", "embedding", "dropout",
           # vision (below): convolution, pooling, 2-D normalization, channel dropout
           "conv2d", "conv_transpose2d", "max_pool2d", "max_pool2d_with_indices", "avg_pool2d",
           "adaptive_avg_pool2d", "batch_norm", "group_norm", "dropout2d"]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


# ---------------------------------------------------------------- linear
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias, with weight (out_features, in_features) as PyTorch.

    One GEMM with the bias added as each tile is stored (gemm_fused); backward: one GEMM for the
    input's gradient, and one for the weight's that also sums the bias gradient (gemm_bias_grad).
    On a device, the bias is written into the output first and accumulated with beta=1."""
    x, w = input._data, weight._data
    if type(x) is not type(w):
        _same_device(x, w)
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape "
                         f"{x.shape}) but the weight expects {w.shape[1]} (weight shape {w.shape})")
    x2 = x if x.ndim == 2 else x.reshape(-1, w.shape[1])
    host = type(w) is np.ndarray
    if bias is None:
        y = T.gemm(x2, w, trans_b=True)
        parents = (input, weight)
    elif host and bias._data.dtype == w.dtype:
        y = T.gemm_fused(x2, w, trans_b=True, bias=bias._data)
        parents = (input, weight, bias)
    else:
        y = (np.empty((x2.shape[0], w.shape[0]), w.dtype) if host
             else _empty((x2.shape[0], w.shape[0]), w.dtype, w))   # on w's device
        y[...] = bias._data
        T.gemm(x2, w, trans_b=True, c=y, beta=1.0)
        parents = (input, weight, bias)

    def backward(g):
        g2 = g if g.ndim == 2 else g.reshape(-1, w.shape[0])
        gx = T.gemm(g2, w).reshape(x.shape) if input.requires_grad else None
        if bias is None:
            return gx, (T.gemm(g2, x2, trans_a=True) if weight.requires_grad else None)
        if host and weight.requires_grad and bias.requires_grad and type(g2) is np.ndarray:
            gw, gb = T.gemm_bias_grad(g2, x2, trans_a=True, sum_of="a")
            return gx, gw, gb
        gw = T.gemm(g2, x2, trans_a=True) if weight.requires_grad else None
        return gx, gw, (T.bias_grad(g2) if bias.requires_grad else None)

    def tb(g):  # the same on Tensors, for create_graph (double backward)
        g2 = g.reshape(-1, w.shape[0])
        gx = g2.matmul(weight).reshape(x.shape) if input.requires_grad else None
        gw = g2.t().matmul(input.reshape(-1, w.shape[1])) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, (g2.sum(0) if bias.requires_grad else None)
    if x.ndim != 2:
        y = y.reshape(x.shape[:-1] + (w.shape[0],))
    return _node(y, parents, backward, tb=tb)


def _linear_relu(input, weight, bias):
    """relu(linear(input, weight, bias)) as one recorded op, for nn.Sequential's Linear, ReLU
    pairs: the ReLU is applied as the GEMM stores its tiles, and backward masks the gradient
    with the output (y > 0 where the pre-activation is) before the linear's two GEMMs. One node
    and one kernel call fewer each way; the numbers are the two ops'. 2-D host input and a bias
    of the weight's dtype; anything else runs the two ops."""
    x, w = input._data, weight._data
    if not (bias is not None and type(x) is np.ndarray and type(w) is np.ndarray
            and x.ndim == 2 and x.dtype == w.dtype and bias._data.dtype == w.dtype
            and x.shape[1] == w.shape[1]):
        return _relu(linear(input, weight, bias))
    y = T.gemm_fused(x, w, trans_b=True, bias=bias._data, activation="relu")

    def backward(g):
        d = T.relu_backward(g, y)
        gx = T.gemm(d, w) if input.requires_grad else None
        if weight.requires_grad and bias.requires_grad:
            gw, gb = T.gemm_bias_grad(d, x, trans_a=True, sum_of="a")
            return gx, gw, gb
        return (gx, T.gemm(d, x, trans_a=True) if weight.requires_grad else None,
                T.bias_grad(d) if bias.requires_grad else None)

    def tb(g):  # create_graph: the ReLU's mask is a constant, as in PyTorch's double backward
        d = g * Tensor((y > 0).astype(y.dtype))
        return (d.matmul(weight) if input.requires_grad else None,
                d.t().matmul(input) if weight.requires_grad else None,
                d.sum(0) if bias.requires_grad else None)
    out = _node(y, (input, weight, bias), backward, save_output=True, tb=tb)
    if out._fn is not None:
        out._fn._qn = "relu"   # grad_fn reads ReluBackward0, as the last op's in PyTorch
    return out


# ---------------------------------------------------------------- activations
# The ops themselves live with Tensor (fastnn/tensor.py), whose methods share them; sigmoid,
# tanh, gelu, softmax and log_softmax are imported from there unchanged.
def relu(input, inplace=False):
    return _relu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _leaky_relu(input, negative_slope)


# ---------------------------------------------------------------- losses
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits input (N, C) (or (C,), or (N, C, d1, ...)) and integer class
    targets, fused with log-softmax in one kernel that also returns the gradient."""
    logits = input._data
    t = target._data if isinstance(target, Tensor) else target
    if type(t) is not np.ndarray:
        t = _asarray(t)
    if weight is not None or label_smoothing or t.dtype.kind not in "iu":
        return _cross_entropy_general(input, target, weight, ignore_index, reduction,
                                      label_smoothing)
    shape = logits.shape
    if logits.ndim == 1:
        l2, t2 = logits.reshape(1, -1), t.reshape(1)
    elif logits.ndim == 2:
        l2, t2 = logits, t
    else:  # (N, C, d1, ...): classes on axis 1, as PyTorch
        l2 = np.moveaxis(logits, 1, -1).reshape(-1, shape[1])
        if t.shape != shape[:1] + shape[2:]:
            raise ValueError(f"cross_entropy: target has shape {t.shape}, expected "
                             f"{shape[:1] + shape[2:]} for input of shape {shape}")
        t2 = t.reshape(-1)
    loss, dlogits = T.cross_entropy(l2, t2, ignore_index=ignore_index, reduction=reduction)

    def backward(g):
        if reduction == "none":
            d = dlogits * g.reshape(-1, 1)
        elif type(g) is not np.ndarray and _on_gpu(g):
            d = dlogits * g   # (comparing g with 1 would wait for the device)
        else:
            d = dlogits if g == 1 else dlogits * g
        if logits.ndim > 2:
            d = np.moveaxis(d.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)
        return (d.reshape(shape),)
    if reduction == "none" and logits.ndim != 2:
        loss = loss.reshape(t.shape)
    if type(logits) is np.ndarray:
        return _node(np.asarray(loss, logits.dtype), (input,), backward)
    return _node(_asarray(loss, logits.dtype), (input,), backward)


def _cross_entropy_general(input, target, weight, ignore_index, reduction, label_smoothing):
    """cross_entropy with class weights, label smoothing or probability targets, in Tensor ops
    with PyTorch's formulas (aten's cross_entropy_loss_label_smoothing / _prob_target)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if input.dim() == 1:
        input = input.unsqueeze(0)
        target = _t(target).unsqueeze(0)
        out = _cross_entropy_general(input, target, weight, ignore_index, reduction,
                                     label_smoothing)
        return out.squeeze(0) if reduction == "none" else out
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    target = _t(target)
    n_classes = input.shape[1]
    logp = log_softmax(input, 1)
    w = None
    if weight is not None:
        w = _t(weight).reshape((1, n_classes) + (1,) * (input.dim() - 2))
    if target._data.dtype.kind not in "iu":  # class probabilities, input's shape
        if tuple(target.shape) != tuple(input.shape):
            raise TypeError(f"cross_entropy: target must hold integer class indices, or class "
                            f"probabilities of the input's shape {tuple(input.shape)}; got dtype "
                            f"{target._data.dtype} and shape {tuple(target.shape)}")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        prod = logp * target if w is None else logp * target * w
        loss = -prod.sum(1)
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.sum() / (input.numel() // n_classes)
    t = target._data
    on_gpu = _on_gpu(t)   # then gather's kernel checks the targets (no wait for the host)
    keep = t != ignore_index
    safe = np.where(keep, t, 0).astype(np.int64)
    if not on_gpu and safe.size and (safe.min() < 0 or safe.max() >= n_classes):
        bad = int(safe.min() if safe.min() < 0 else safe.max())
        raise IndexError(f"cross_entropy: target {bad} is out of range for {n_classes} classes")
    picked = -logp.gather(1, Tensor(safe[:, None])).squeeze(1)  # (N, d1, ...)
    wt = None
    if w is not None:
        wt = _t(weight)._data[safe] * keep
        picked = picked * Tensor(wt.astype(input._data.dtype))
    else:
        picked = picked * Tensor(keep.astype(input._data.dtype))
    count = wt.sum() if wt is not None else keep.sum()
    count = Tensor(count.astype(input._data.dtype)) if on_gpu else float(count)
    if reduction == "none":
        nll = picked
    elif reduction == "sum":
        nll = picked.sum()
    else:
        nll = picked.sum() / count
    if not label_smoothing:
        return nll
    smooth = -(logp if w is None else logp * w).sum(1) * Tensor(keep.astype(input._data.dtype))
    if reduction == "none":
        ret = smooth
    elif reduction == "sum":
        ret = smooth.sum()
    else:
        ret = smooth.sum() / count
    return (1 - label_smoothing) * nll + ret * (label_smoothing / n_classes)


def nll_loss(input, target, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (N, C) at integer targets (glue ops)."""
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    t = _same_device(input._data, t)[1]            # PyTorch's error for two devices
    keep = t != ignore_index
    rows = np.arange(len(t))
    picked = -input[rows, np.where(keep, t, 0)] * Tensor(keep.astype(input.dtype))
    if reduction == "none":
        return picked
    if reduction == "sum":
        return picked.sum()
    if _on_gpu(t):   # the count stays on the GPU: nothing waits for the host
        return picked.sum() / Tensor(np.maximum(keep.sum(), 1).astype(input.dtype))
    return picked.sum() / max(int(keep.sum()), 1)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error (reduction 'mean' | 'sum' | 'none'); input and target of one shape."""
    target = _t(target)
    if reduction == "none":
        d = input - target
        return d * d
    if input._data.shape != target._data.shape:
        raise ValueError(f"mse_loss: input has shape {input._data.shape} but target has "
                         f"{target._data.shape}")
    loss, grad = T.mse_loss(input._data, target._data)
    n = input._data.size
    if reduction == "sum":
        loss, grad = loss * n, grad * n
    elif reduction != "mean":
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    on_gpu = type(grad) is not np.ndarray and _on_gpu(grad)

    def backward(g):
        d = grad * g if on_gpu or g != 1 else grad   # (g == 1 would wait for the device)
        return d, (-d if target.requires_grad else None)
    if on_gpu:
        return _node(_asarray(loss, input._data.dtype), (input, target), backward)
    return _node(np.asarray(loss, input._data.dtype), (input, target), backward)


# ---------------------------------------------------------------- layer norm
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing dims named by normalized_shape, then scale and shift."""
    x = input._data
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(ns):] != ns or len(ns) > x.ndim:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape "
                         f"{ns}")
    x2 = x if len(ns) == 1 else x.reshape(x.shape[:x.ndim - len(ns)] + (-1,))
    w = None if weight is None else weight._data.reshape(-1)
    b = None if bias is None else bias._data.reshape(-1)
    y, mu, rstd = T.layer_norm(x2, w, b, eps)
    parents = (input,) + tuple(p for p in (weight, bias) if p is not None)

    def backward(g):
        dx, dw, db = T.layer_norm_backward(g.reshape(x2.shape), x2, w, mu, rstd)
        out = [dx.reshape(x.shape)]
        if weight is not None:
            out.append(dw.reshape(ns))
        if bias is not None:
            out.append(db.reshape(ns))
        return out
    return _node(y.reshape(x.shape), parents, backward)


# ---------------------------------------------------------------- embedding
def embedding(input, weight, padding_idx=None):
    """Rows of weight (V, C) gathered at integer ids of any shape -> ids.shape + (C,).
    The row at padding_idx gets no gradient, as PyTorch."""
    ids = _asarray(input._data if isinstance(input, Tensor) else input)
    w = weight._data
    if type(ids) is not type(w) and (_on_gpu(ids) or _on_gpu(w)):
        if isinstance(input, Tensor):
            _same_device(w, ids)   # PyTorch's error for ids and weight on two devices
        ids = _moved(ids, _device_of(w))   # a host id array: one counted copy, kept for backward
    n = w.shape[0]
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n

    def backward(g):
        dw = T.embedding_backward(g, ids, n)
        if padding_idx is not None:
            dw[padding_idx] = 0
        return (dw,)
    return _node(T.embedding(w, ids), (weight,), backward)


# ---------------------------------------------------------------- dropout
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if training and 0.0 < p < 1.0 and _on_gpu(input._data):   # the mask drawn on the GPU
        return _dropout_on_device(input, p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    x = input._data
    if p == 1.0:
        mask = np.zeros_like(x)
    else:   # PyTorch's CPU noise: bernoulli_(1 - p) / (1 - p), the same draws after a seed
        mask = default_generator().dropout_mask(x.shape, p, x.dtype)
    return _node(x * mask, (input,), lambda g: (g * mask,))


def _dropout_on_device(input, p):
    """dropout of a GPU tensor: the mask from the device's counter-based generator (seeded from
    fastnn's generator), so nothing crosses to the host; other draws than the CPU's."""
    x = input._data
    u = _random_on_device("rand", x.shape, x.dtype, None, _device_of(x), False)._data
    mask = (u >= x.dtype.type(p)).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return _node(x * mask, (input,), lambda g: (g * mask,))


# ================================================================ vision
# Each op: one forward kernel (fastnn.kernels.trusted) and a closure calling its backward
# partner. Geometry arguments are passed to the kernels as given (int, pair, 'same'/'valid'),
# so their checks, error messages and output-size arithmetic are the kernels' own.
def _grad_array(g):
    return g if g.flags.c_contiguous else _ascontiguous(g)     # (on g's device)


# ---------------------------------------------------------------- convolution
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of input (N, C, H, W) or (C, H, W) with weight
    (C_out, C/groups, kH, kW), as torch.nn.functional.conv2d; padding may be 'valid' or 'same'.

    Backward: one conv2d_backward kernel returns the gradients asked for (input, weight, bias),
    so a first layer whose input needs no gradient never computes one."""
    x, w = input._data, weight._data
    b = None if bias is None else bias._data
    y = T.conv2d(x, w, b, stride, padding, dilation, groups)
    parents = (input, weight) if bias is None else (input, weight, bias)

    def backward(g):
        mask = (input.requires_grad, weight.requires_grad,
                bias is not None and bias.requires_grad)
        dx, dw, db = T.conv2d_backward(_grad_array(g), x, w, stride, padding, dilation, groups,
                                       output_mask=mask)
        return (dx, dw) if bias is None else (dx, dw, db)
    return _node(y, parents, backward, saved=(input, weight))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution of input (N, C, H, W) with weight (C, C_out/groups, kH, kW),
    as torch.nn.functional.conv_transpose2d (same argument order)."""
    x, w = input._data, weight._data
    b = None if bias is None else bias._data
    y = T.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    parents = (input, weight) if bias is None else (input, weight, bias)

    def backward(g):
        mask = (input.requires_grad, weight.requires_grad,
                bias is not None and bias.requires_grad)
        dx, dw, db = T.conv_transpose2d_backward(_grad_array(g), x, w, stride, padding,
                                                 output_padding, groups, dilation,
                                                 output_mask=mask)
        return (dx, dw) if bias is None else (dx, dw, db)
    return _node(y, parents, backward, saved=(input, weight))


# ---------------------------------------------------------------- pooling
def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """(output, indices): 2-D max pooling and the flat index (h * W + w) of each maximum in its
    input plane, an int64 Tensor (as torch's)."""
    x = input._data
    if stride is not None and not isinstance(stride, int) and len(stride) == 0:
        stride = None                                    # torch's default: stride = kernel_size
    y, idx = T.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)
    shape = x.shape

    def backward(g):
        return (T.max_pool2d_backward(_grad_array(g), idx, shape),)
    return _node(y, (input,), backward), Tensor(idx)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling, as torch.nn.functional.max_pool2d (stride defaults to kernel_size);
    return_indices=True also returns the argmax indices (for max_unpool2d, or to look at)."""
    y, idx = max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (y, idx) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling, as torch.nn.functional.avg_pool2d."""
    x = input._data
    if stride is not None and not isinstance(stride, int) and len(stride) == 0:
        stride = None
    y = T.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)

    def backward(g):
        return (T.avg_pool2d_backward(_grad_array(g), x, kernel_size, stride, padding, ceil_mode,
                                      count_include_pad, divisor_override),)
    return _node(y, (input,), backward)


def _adaptive_size(x, output_size):
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        return (int(output_size), int(output_size))
    try:
        o = tuple(output_size)
    except TypeError:
        return output_size                               # the kernel says what is wrong
    if len(o) != 2:
        return o
    return tuple(int(n) if v is None else (int(v) if isinstance(v, (int, np.integer))
                                           and not isinstance(v, bool) else v)
                 for n, v in zip(x.shape[-2:], o))


def adaptive_avg_pool2d(input, output_size):
    """Adaptive 2-D average pooling to output_size (an int, or a pair; None keeps that size),
    as torch.nn.functional.adaptive_avg_pool2d."""
    x = input._data
    o = _adaptive_size(x, output_size)
    y = T.adaptive_avg_pool2d(x, o)

    def backward(g):
        return (T.adaptive_avg_pool2d_backward(_grad_array(g), x),)
    return _node(y, (input,), backward)


# ---------------------------------------------------------------- normalization
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-05):
    """Batch normalization over (N, *spatial) per channel of input (N, C, *spatial), as
    torch.nn.functional.batch_norm: training normalizes with the batch's statistics and updates
    running_mean / running_var (Tensors, or None) in place with `momentum`; otherwise the running
    statistics normalize."""
    x = input._data
    rm = None if running_mean is None else running_mean._data
    rv = None if running_var is None else running_var._data
    w = None if weight is None else weight._data
    b = None if bias is None else bias._data
    if w is None or b is None:                    # the trusted kernel wants both vectors
        c = x.shape[1] if x.ndim >= 2 else 0
        w = np.ones_like(x, shape=(c,)) if w is None else w      # (on x's device)
        b = np.zeros_like(x, shape=(c,)) if b is None else b
    if momentum is None:
        momentum = 0.0
    y, mean, invstd = T.batch_norm(x, rm, rv, w, b, bool(training), momentum, eps)
    if training and rm is not None:               # updated in place: a new version, as torch
        running_mean._vc[0] += 1
        running_var._vc[0] += 1
    parents = (input,) + tuple(p for p in (weight, bias) if p is not None)

    def backward(g):
        dx, dw, db = T.batch_norm_backward(_grad_array(g), x, w, mean, invstd, bool(training))
        out = [dx]
        if weight is not None:
            out.append(dw)
        if bias is not None:
            out.append(db)
        return out
    return _node(y, parents, backward, saved=(input,))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Group normalization: statistics per sample over groups of C / num_groups channels, as
    torch.nn.functional.group_norm."""
    x = input._data
    w = None if weight is None else weight._data
    b = None if bias is None else bias._data
    y, mean, rstd = T.group_norm(x, num_groups, w, b, eps)
    parents = (input,) + tuple(p for p in (weight, bias) if p is not None)

    def backward(g):
        dx, dw, db = T.group_norm_backward(_grad_array(g), x, w, mean, rstd, num_groups)
        out = [dx]
        if weight is not None:
            out.append(dw)
        if bias is not None:
            out.append(db)
        return out
    return _node(y, parents, backward, saved=(input,))


# ---------------------------------------------------------------- channel dropout
def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels (feature maps) with probability p and scale the rest by 1/(1-p), as
    torch.nn.functional.dropout2d: input (N, C, H, W); a 3-D input is (N, C, L), as torch
    takes it (with a warning for other ranks, as torch)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout2d: p must be in [0, 1], got {p}")
    x = input._data
    if x.ndim not in (3, 4):   # torch warns, and still drops per (dim 0, dim 1) entry
        import warnings
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated "
                      f"and will result in an error in a future release. To retain the "
                      f"behavior and silence this warning, please use dropout instead.")
    if not training or p == 0.0:
        return input
    # torch's feature noise has shape (size 0, size 1, 1, ...): a 3-D input is taken as
    # (N, C, L) (dropout1d), a 2-D one is dropped elementwise
    shape = x.shape[:2] + (1,) * (x.ndim - 2)
    if p == 1.0:
        mask = np.zeros(shape, x.dtype)
    else:   # PyTorch's feature noise (N, C, 1, 1): bernoulli_(1 - p) / (1 - p)
        mask = default_generator().dropout_mask(shape, p, x.dtype)
    return _node(x * mask, (input,), lambda g: (g * mask,))
