"""Spatial transformers' sampling, as PyTorch's: F.affine_grid and F.grid_sample (4-D, modes
'bilinear' and 'nearest', padding 'zeros' and 'border', both align_corners).

affine_grid is Tensor ops (its gradient reaches theta by autograd). grid_sample is one autograd
node with a hand-written backward: for each output point the four neighbours' weights are
computed once, the forward gathers, and backward scatters into the input (np.add.at) and
differentiates the weights for the grid.

Coordinates: grid values in [-1, 1] map to pixel x = (g + 1) (W - 1) / 2 with align_corners=True
(-1 and 1 are the corner pixels' centres) and x = ((g + 1) W - 1) / 2 without (they are the
corner pixels' outer edges)."""
import numpy as np

from ..tensor import Tensor, _node

__all__ = []
FUNCTIONS = ["affine_grid", "grid_sample"]


def _base_coords(n, align_corners, dtype):
    if n == 1:
        return np.zeros(1, dtype)
    c = np.linspace(-1, 1, n, dtype=np.float64)
    return (c if align_corners else c * (n - 1) / n).astype(dtype)


def affine_grid(theta, size, align_corners=False):
    """The (N, H, W, 2) sampling grid of the affine maps theta (N, 2, 3) for an output of size
    (N, C, H, W), as torch.nn.functional.affine_grid."""
    if not isinstance(theta, Tensor) or theta._data.dtype.kind != "f":
        raise TypeError("affine_grid: expected theta to be a floating point Tensor")
    size = [int(s) for s in size]
    if len(size) != 4:
        raise NotImplementedError(f"affine_grid only supports 4D sizes here, got size {size}")
    n, _, h, w = size
    if tuple(theta.shape) != (n, 2, 3):
        raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size "
                         f"{size}. Got {list(theta.shape)}.")
    dtype = theta._data.dtype
    xs, ys = _base_coords(w, align_corners, dtype), _base_coords(h, align_corners, dtype)
    base = np.empty((h, w, 3), dtype)
    base[..., 0] = xs[None, :]
    base[..., 1] = ys[:, None]
    base[..., 2] = 1
    grid = Tensor(base.reshape(1, h * w, 3)).matmul(theta.transpose(1, 2))
    return grid.reshape(n, h, w, 2)


def _unnormalize(g, size, align_corners):
    """Pixel coordinate of grid value g, and d(pixel)/d(g)."""
    if align_corners:
        return (g + 1) * ((size - 1) / 2), (size - 1) / 2
    return ((g + 1) * size - 1) / 2, size / 2


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) (x, y in [-1, 1]) -> (N, C, Ho, Wo), as
    torch.nn.functional.grid_sample."""
    if mode not in ("bilinear", "nearest"):
        raise NotImplementedError(f"grid_sample: mode {mode!r} is not supported (bilinear, "
                                  f"nearest)")
    if padding_mode not in ("zeros", "border"):
        raise NotImplementedError(f"grid_sample: padding_mode {padding_mode!r} is not supported "
                                  f"(zeros, border)")
    x, g = input._data, grid._data
    if x.ndim != 4 or g.ndim != 4 or g.shape[-1] != 2 or g.shape[0] != x.shape[0]:
        raise ValueError(f"grid_sample: expected input (N, C, H, W) and grid (N, H_out, W_out, 2)"
                         f" with the same N, got {x.shape} and {g.shape}")
    if x.dtype != g.dtype:
        raise TypeError(f"grid_sample: input and grid must have the same dtype, got {x.dtype} "
                        f"and {g.dtype}")
    align_corners = bool(align_corners)
    n, c, h, w = x.shape
    ix, sx = _unnormalize(g[..., 0], w, align_corners)
    iy, sy = _unnormalize(g[..., 1], h, align_corners)
    if padding_mode == "border":                 # clip the coordinates (their gradient is 0 there)
        cx, cy = (ix >= 0) & (ix <= w - 1), (iy >= 0) & (iy <= h - 1)
        ix, iy = np.clip(ix, 0, w - 1), np.clip(iy, 0, h - 1)
    batch = np.arange(n)[:, None, None]
    if mode == "nearest":
        # round half to even, as ATen's nearbyint
        corners = [(np.rint(iy).astype(np.int64), np.rint(ix).astype(np.int64),
                    np.ones_like(ix))]
    else:
        x0, y0 = np.floor(ix), np.floor(iy)
        fx, fy = ix - x0, iy - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        corners = [(y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                   (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)]
    taps = []                                    # (y, x clipped, weight with 0 outside, inside)
    out = np.zeros((n, c) + g.shape[1:3], x.dtype)
    for yy, xx, wt in corners:
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        yc, xc = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
        wt = np.where(inside, wt, 0).astype(x.dtype)
        v = x[batch, :, yc, xc]                  # (N, Ho, Wo, C)
        out += np.moveaxis(v * wt[..., None], -1, 1)
        taps.append((yc, xc, wt, inside))

    def backward(gout):
        go = np.moveaxis(np.asarray(gout, x.dtype), 1, -1)    # (N, Ho, Wo, C)
        dx = np.zeros_like(x) if input.requires_grad else None
        dgx = np.zeros(ix.shape, x.dtype)
        dgy = np.zeros(iy.shape, x.dtype)
        for k, (yc, xc, wt, inside) in enumerate(taps):
            if dx is not None:
                np.add.at(dx, (batch, slice(None), yc, xc), go * wt[..., None])
            if mode == "bilinear":
                # d weight / d ix and d iy for this corner (zero where it lies outside)
                v = (x[batch, :, yc, xc] * go).sum(-1) * inside
                sgx = 1 if k in (1, 3) else -1
                sgy = 1 if k in (2, 3) else -1
                dgx += v * sgx * (fy if k in (2, 3) else 1 - fy)
                dgy += v * sgy * (fx if k in (1, 3) else 1 - fx)
        dgrid = np.stack([dgx * sx, dgy * sy], -1).astype(x.dtype)
        if padding_mode == "border":
            dgrid[..., 0] *= cx
            dgrid[..., 1] *= cy
        return dx, dgrid
    return _node(out, (input, grid), backward)
