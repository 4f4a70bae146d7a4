"""fastnn.fft: torch.fft's transforms on fastnn tensors (numpy.fft underneath), with autograd.

    spec = fastnn.fft.rfft(signal)            # complex64 for a float32 signal, as torch
    power = spec.abs() ** 2                   # gradients flow back to `signal`

Each transform is linear, so its gradient is its adjoint, under PyTorch's convention for
complex gradients (dL/dRe z + i dL/dIm z): fft's is an unnormalised inverse transform with the
same scaling; rfft's zero-pads the one-sided spectrum back and keeps the real part; irfft's
counts the bins that stand for two (k and n-k) twice. Real inputs get real gradients.
"""
import numpy as np

from .tensor import Tensor, _node, _f, roll, _dtype, get_default_dtype

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

_NORMS = ("backward", "forward", "ortho")


def _complex_of(dtype):
    return np.complex128 if dtype in (np.float64, np.complex128) else np.complex64


def _real_of(dtype):
    return np.float64 if dtype in (np.float64, np.complex128) else np.float32


def _scale(norm, n, inverse):
    """The factor a transform of n points multiplies its unnormalised sum by."""
    if norm is None:
        norm = "backward"
    if norm not in _NORMS:
        raise ValueError(f'Invalid normalization mode: "{norm}"')
    if norm == "ortho":
        return 1 / np.sqrt(n)
    return 1 / n if (norm == "backward") == inverse else 1.0


def _dims_and_sizes(x, s, dim, default_all):
    nd = x.ndim
    if dim is None:
        if s is not None:
            dims = list(range(nd - len(s), nd))
        else:
            dims = list(range(nd)) if default_all else [nd - 1]
    elif isinstance(dim, int):
        dims = [dim % nd]
    else:
        dims = [d % nd for d in dim]
    if s is None:
        sizes = [x.shape[d] for d in dims]
    else:
        sizes = [x.shape[d] if n == -1 else int(n) for n, d in zip(s, dims)]
    return dims, sizes


def _resize(a, dims, sizes):
    """Crop or zero-pad a along dims to sizes (torch's n/s arguments)."""
    for d, n in zip(dims, sizes):
        cur = a.shape[d]
        if n < cur:
            a = np.take(a, np.arange(n), axis=d)
        elif n > cur:
            pad = [(0, 0)] * a.ndim
            pad[d] = (0, n - cur)
            a = np.pad(a, pad)
    return a


def _unresize(g, dims, in_sizes):
    return _resize(g, dims, in_sizes)


def _check(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"fft.{name}(): argument 'input' must be Tensor, not "
                        f"{type(x).__name__}")


def _c2c(x, s, dim, norm, inverse, default_all, name):
    _check(x, name)
    a = x._data if x._data.dtype.kind == "c" else _f(x)
    cdt = _complex_of(a.dtype)
    dims, sizes = _dims_and_sizes(a, s, dim, default_all)
    in_sizes = [a.shape[d] for d in dims]
    n = int(np.prod(sizes))
    k = _scale(norm, n, inverse)
    ar = _resize(a, dims, sizes)
    raw = np.fft.ifftn(ar, axes=dims) * n if inverse else np.fft.fftn(ar, axes=dims)
    out = (raw * k).astype(cdt)
    real_in = a.dtype.kind != "c"

    def backward(g):
        # the adjoint: conj(F) for F, F for conj(F), with the same real factor
        adj = np.fft.fftn(g, axes=dims) if inverse else np.fft.ifftn(g, axes=dims) * n
        ga = _unresize(adj * k, dims, in_sizes)
        return (ga.real.astype(a.dtype) if real_in else ga.astype(a.dtype),)
    return _node(out, (x,), backward)


def _r2c(x, s, dim, norm, default_all, name, onesided=True):
    _check(x, name)
    a = _f(x)
    if a.dtype.kind == "c":
        raise RuntimeError(f"{name} expects a real input tensor, but got {x.dtype}")
    dims, sizes = _dims_and_sizes(a, s, dim, default_all)
    in_sizes = [a.shape[d] for d in dims]
    n = int(np.prod(sizes))
    k = _scale(norm, n, False)
    ar = _resize(a, dims, sizes)
    out = (np.fft.rfftn(ar, axes=dims) * k).astype(_complex_of(a.dtype))
    last, nlast = dims[-1], sizes[-1]

    def backward(g):
        full = _resize(g, [last], [nlast])      # the dropped half of the spectrum gets zero
        adj = np.fft.ifftn(full, axes=dims) * n
        return (_unresize((adj * k).real, dims, in_sizes).astype(a.dtype),)
    return _node(out, (x,), backward)


def _c2r(x, s, dim, norm, default_all, name):
    _check(x, name)
    a = x._data if x._data.dtype.kind == "c" else _f(x)
    dims, _ = _dims_and_sizes(a, None, dim, default_all)
    if s is None:
        sizes = [a.shape[d] for d in dims[:-1]] + [2 * (a.shape[dims[-1]] - 1)]
    else:
        dims, sizes = _dims_and_sizes(a, s, dim, default_all)
        sizes = [a.shape[d] if n == -1 else n for n, d in zip(sizes, dims)]
    nlast = sizes[-1]
    if nlast < 1:
        raise RuntimeError(f"Invalid number of data points ({nlast}) specified")
    m = nlast // 2 + 1
    in_sizes = [a.shape[d] for d in dims]
    n = int(np.prod(sizes))
    k = _scale(norm, n, True)
    ar = _resize(a, dims, sizes[:-1] + [m])
    out = (np.fft.irfftn(ar, s=sizes, axes=dims) * n * k).astype(_real_of(a.dtype))
    # bins 1..m-1 (and not n/2 for even n) stand for two frequencies, k and n - k
    w = np.full(m, 2.0)
    w[0] = 1.0
    if nlast % 2 == 0:
        w[-1] = 1.0
    wshape = [1] * a.ndim
    wshape[dims[-1]] = m

    def backward(g):
        gr = np.fft.rfft(g, axis=dims[-1]) * w.reshape(wshape)
        if len(dims) > 1:
            gr = np.fft.fftn(gr, axes=dims[:-1])
        ga = _unresize(gr * k, dims, in_sizes)
        return (ga.astype(a.dtype) if a.dtype.kind == "c" else ga.real.astype(a.dtype),)
    return _node(out, (x,), backward)


def fft(input, n=None, dim=-1, norm=None):
    return _c2c(input, None if n is None else [n], dim, norm, False, False, "fft")


def ifft(input, n=None, dim=-1, norm=None):
    return _c2c(input, None if n is None else [n], dim, norm, True, False, "ifft")


def fft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2c(input, s, dim, norm, False, False, "fft2")


def ifft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2c(input, s, dim, norm, True, False, "ifft2")


def fftn(input, s=None, dim=None, norm=None):
    return _c2c(input, s, dim, norm, False, True, "fftn")


def ifftn(input, s=None, dim=None, norm=None):
    return _c2c(input, s, dim, norm, True, True, "ifftn")


def rfft(input, n=None, dim=-1, norm=None):
    return _r2c(input, None if n is None else [n], dim, norm, False, "rfft")


def rfft2(input, s=None, dim=(-2, -1), norm=None):
    return _r2c(input, s, dim, norm, False, "rfft2")


def rfftn(input, s=None, dim=None, norm=None):
    return _r2c(input, s, dim, norm, True, "rfftn")


def irfft(input, n=None, dim=-1, norm=None):
    return _c2r(input, None if n is None else [n], dim, norm, False, "irfft")


def irfft2(input, s=None, dim=(-2, -1), norm=None):
    return _c2r(input, s, dim, norm, False, "irfft2")


def irfftn(input, s=None, dim=None, norm=None):
    return _c2r(input, s, dim, norm, True, "irfftn")


def hfft(input, n=None, dim=-1, norm=None):
    """The FFT of a Hermitian-symmetric signal given by its first half (real output):
    irfft of the conjugate, with the forward transform's scaling."""
    flip = {"backward": "forward", "forward": "backward", "ortho": "ortho", None: "forward"}
    return irfft(input.conj() if hasattr(input, "conj") else input, n, dim, flip[norm])


def ihfft(input, n=None, dim=-1, norm=None):
    flip = {"backward": "forward", "forward": "backward", "ortho": "ortho", None: "forward"}
    out = rfft(input, n, dim, flip[norm])
    return out.conj() if hasattr(out, "conj") else out


def fftfreq(n, d=1.0, *, dtype=None, device=None, layout=None, requires_grad=False):
    dt = _dtype(dtype) or get_default_dtype()
    t = Tensor(np.fft.fftfreq(n, d).astype(dt))
    return t.requires_grad_(True) if requires_grad else t


def rfftfreq(n, d=1.0, *, dtype=None, device=None, layout=None, requires_grad=False):
    dt = _dtype(dtype) or get_default_dtype()
    t = Tensor(np.fft.rfftfreq(n, d).astype(dt))
    return t.requires_grad_(True) if requires_grad else t


def _shift(input, dim, sign):
    if dim is None:
        dim = tuple(range(input.ndim))
    elif isinstance(dim, int):
        dim = (dim,)
    shifts = tuple(sign * (input.shape[d] // 2) if sign > 0 else -(input.shape[d] // 2)
                   for d in dim)
    return roll(input, shifts, tuple(dim))


def fftshift(input, dim=None):
    """The zero frequency moved to the centre (a roll by n // 2 along each dim)."""
    return _shift(input, dim, 1)


def ifftshift(input, dim=None):
    return _shift(input, dim, -1)

