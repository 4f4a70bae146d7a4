"""More initializers with PyTorch's names and formulas, attached to fastnn.nn.init by
fastnn/nn/__init__.py: orthogonal_ (RNN weights, the super-resolution example), eye_, dirac_.
In place, on fastnn's generator (PyTorch's draws)."""
import numpy as np

from ..tensor import Tensor, _float_work, _gen, no_grad

FUNCTIONS = ["orthogonal_", "eye_", "dirac_"]


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix (the tensor flattened to (rows, rest)) times gain: the Q of a
    QR decomposition of a normal draw, its signs fixed by R's diagonal, as torch. The draw is
    PyTorch's (the same seed, the same matrix); the QR is numpy's LAPACK in the tensor's dtype,
    so the result agrees with torch's to rounding, not bit for bit."""
    d = tensor._data
    if d.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if d.size == 0:
        return tensor
    rows = d.shape[0]
    cols = d.size // rows
    work = _float_work(d.dtype)
    flat = _gen(generator).normal_fill(rows * cols, work).reshape(rows, cols)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r)).astype(work)
    if rows < cols:
        q = q.T
    with no_grad():
        tensor.copy_(Tensor(np.ascontiguousarray(q).reshape(d.shape).astype(d.dtype)))
        tensor.mul_(gain)
    return tensor


def eye_(tensor):
    """The identity matrix (ones on the diagonal of a 2-D tensor)."""
    d = tensor._data
    if d.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    d[...] = np.eye(*d.shape, dtype=d.dtype)
    return tensor


def dirac_(tensor, groups=1):
    """A convolution weight (out, in, *k) that passes its input through: 1 at each kernel's
    centre for out channel i and in channel i (per group), as torch."""
    d = tensor._data
    if d.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if d.shape[0] % groups:
        raise ValueError("dim 0 must be divisible by groups")
    per = d.shape[0] // groups
    d[...] = 0
    centre = tuple(k // 2 for k in d.shape[2:])
    for g in range(groups):
        for i in range(min(per, d.shape[1])):
            d[(g * per + i, i) + centre] = 1
    return tensor
