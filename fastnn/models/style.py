"""Neural style transfer (Gatys, Ecker & Bethge, "Image style transfer using convolutional neural
networks", CVPR 2016): optimize the pixels of an image so that a conv net's deep features match
those of a content photograph, and the correlations between its channels (Gram matrices, at
several scales) match those of a style image.

    net = RandomFeatures()                                   # no download: random weights
    obj = StyleObjective(net, content, style, style_weight=10)
    result, history = transfer(obj, steps=300, optimizer="lbfgs")

The losses are relative, so they read the same for any feature network:

    content = |F(x) - F(c)|^2 / |F(c)|^2          at the content layer (a deep one)
    style   = mean over style layers of |G(x) - G(s)|^2 / |G(s)|^2,   G = F F^T / (H W)
    tv      = mean squared difference of neighbouring pixels (optional smoothing)
    total   = content_weight * content + style_weight * style + tv_weight * tv

Why random weights work. A Gram matrix of ReLU features of random filters is a set of
second-order statistics of the image's local patches, seen through many random projections:
how often colours and oriented contrasts at one scale occur together. Matching those statistics
is what a texture model is (Portilla & Simoncelli 2000 used hand-made filters for the same end);
what the filters are matters less than how many there are and at how many scales they look.
Published results: Ustyuzhaninov, Brendel, Gatys & Bethge (ICLR 2017, "What does it take to
generate natural textures?") synthesize textures close to VGG's with a single layer of random
filters at several sizes; He, Wang & Hopcroft (NeurIPS 2016, "A powerful generative model using
random weights for the deep image representation") do style transfer with an untrained VGG.
So the default network here is a pyramid of random 3x3 convolutions, each level seeing the
image at half the previous resolution (average pooling, as Gatys et al. recommend over max
pooling), with He-scaled Gaussian weights so that every level's activations have the same size.
The content layer is the second level (a quarter of the image's pixels, receptive field 10
pixels): its features keep the layout of the photograph (where edges and regions are) and
little of its exact colours and fine texture, which the style may change. (A deeper level kept
less of the layout: random features of a deep level mix too much.)

The alternative is a trained network: CNNFeatures takes the shapes CNN of `fastnn train cnn
--data shapes` (32x32 drawings of six objects), the features after each stage's ReLU.
"""
import numpy as np

from .. import nn
from ..kernels import trusted as T
from ..optim import LBFGS, Adam
from ..tensor import Function, Tensor, from_numpy, no_grad

__all__ = ["RandomFeatures", "CNNFeatures", "StyleObjective", "gram_matrix", "transfer",
           "OPTIMIZERS", "DEFAULT_CHANNELS"]

DEFAULT_CHANNELS = (16, 32, 64, 128)
OPTIMIZERS = ("lbfgs", "adam")


class RandomFeatures(nn.Module):
    """A pyramid of random conv layers: level k is conv3x3 -> ReLU on the previous level's
    output average-pooled by 2 (level 0 sees the pixels, centred on 0.5). The weights are
    Gaussian, std sqrt(2 / fan_in), drawn from `seed`; no bias; nothing is trained.

    forward(x (N, 3, H, W)) returns the list of each level's feature maps."""

    def __init__(self, channels=DEFAULT_CHANNELS, in_channels=3, kernel_size=3, seed=0,
                 dtype=np.float32):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"RandomFeatures: channels must list at least one positive width, "
                             f"got {channels}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"RandomFeatures: kernel_size must be odd and >= 1, got "
                             f"{kernel_size}")
        rng = np.random.default_rng(seed)
        self.channels, self.in_channels = channels, int(in_channels)
        self.names = [f"level{k + 1}" for k in range(len(channels))]
        convs, c_in = [], self.in_channels
        for c in channels:
            conv = nn.Conv2d(c_in, c, kernel_size, padding=kernel_size // 2, bias=False,
                             dtype=dtype)
            fan_in = c_in * kernel_size * kernel_size
            conv.weight._data[...] = rng.normal(0.0, np.sqrt(2.0 / fan_in), conv.weight.shape)
            conv.weight.requires_grad_(False)
            convs.append(conv)
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.pool = nn.AvgPool2d(2)
        self.relu = nn.ReLU()

    def min_size(self):
        """The smallest image side every level can see (one pixel at the last level)."""
        return 2 ** (len(self.channels) - 1)

    def forward(self, x):
        out, h = [], x - 0.5
        for k, conv in enumerate(self.convs):
            if k:
                h = self.pool(h)
            h = self.relu(conv(h))
            out.append(h)
        return out


class CNNFeatures(nn.Module):
    """A trained fastnn.models.CNN (the shapes model of `fastnn train cnn --data shapes`) as a
    feature network: the output of each stage's ReLU, before its pooling, in eval mode (its
    BatchNorm uses the running statistics); its weights are frozen."""

    def __init__(self, cnn):
        super().__init__()
        if not hasattr(cnn, "features") or not hasattr(cnn, "stages"):
            raise ValueError("CNNFeatures needs a fastnn.models.CNN (from `fastnn train cnn`)")
        self.cnn = cnn.eval()
        for p in self.cnn.parameters():
            p.requires_grad_(False)
        self.in_channels = cnn.in_channels
        self.channels = tuple(cnn.channels)
        self.names = [name for name, _ in cnn.stages()]
        self._taps = [last - 1 for _, last in cnn.stages()]      # each stage's ReLU
        self.train(False)

    def train(self, mode=True):          # stays in eval mode: BatchNorm's running statistics
        return super().train(False)

    def min_size(self):
        return 2 ** (len(self.channels) - 1)

    def forward(self, x):
        out, h = [], x
        for i, layer in enumerate(self.cnn.features):
            h = layer(h)
            if i in self._taps:
                out.append(h)
            if len(out) == len(self._taps):
                break
        return out


class _Gram(Function):
    """G = M M^T * scale for M (C, K): one GEMM each way. As a matmul of M and its transpose
    the backward would take two (C, C) x (C, K) products and copies of the transposed view;
    G is symmetric, so dM = (dG + dG^T) M * scale is one."""

    @staticmethod
    def forward(ctx, m, scale):
        a = np.ascontiguousarray(m._data)
        ctx.save_for_backward(m)
        ctx.scale = scale
        g = T.gemm(a, a, trans_b=True)
        g *= g.dtype.type(scale)
        return from_numpy(g)

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        g = g._data
        sym = np.ascontiguousarray((g + g.T) * g.dtype.type(ctx.scale))   # (C, C): cheap
        return from_numpy(T.gemm(sym, np.ascontiguousarray(m._data))), None


def gram_matrix(f):
    """The Gram matrix of feature maps f (C, H, W) or (1, C, H, W): G[i, j] = sum over pixels of
    f[i] * f[j], divided by H * W (so it does not grow with the image)."""
    if f.ndim not in (3, 4) or (f.ndim == 4 and f.shape[0] != 1):
        raise ValueError(f"gram_matrix: expected one image's features (C, H, W) or "
                         f"(1, C, H, W), got shape {tuple(f.shape)}")
    c, h, w = f.shape[-3:]
    return _Gram.apply(f.reshape(c, h * w), 1.0 / (h * w))


def _as_batch(img, dtype):
    a = np.asarray(img._data if isinstance(img, Tensor) else img, dtype=dtype)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W), got shape {a.shape}")
    return np.ascontiguousarray(a)


class StyleObjective:
    """The losses of a candidate image x against a content and a style image, on a feature
    network's levels: content at `content_layer` (default 1, the second level), style (Gram) at
    every level in `style_layers` (default all). See the module docstring for the formulas.

    content, style: (C, H, W) arrays in [0, 1]; they may differ in size (Gram matrices are
    (channels x channels) whatever the size)."""

    def __init__(self, features, content, style, style_weight=10.0, content_weight=1.0,
                 tv_weight=0.0, content_layer=None, style_layers=None):
        self.features = features
        self.dtype = np.float32 if np.asarray(content).dtype != np.float64 else np.float64
        self.content = _as_batch(content, self.dtype)
        self.style = _as_batch(style, self.dtype)
        c_in = getattr(features, "in_channels", 3)
        for name, img in (("content", self.content), ("style", self.style)):
            if img.shape[1] != c_in:
                raise ValueError(f"the {name} image has {img.shape[1]} channels; the feature "
                                 f"network takes {c_in}")
            small = features.min_size() if hasattr(features, "min_size") else 1
            if min(img.shape[-2:]) < small:
                raise ValueError(f"the {name} image is {img.shape[-2]}x{img.shape[-1]}; the "
                                 f"feature network needs at least {small}x{small}")
        for name, v in (("style_weight", style_weight), ("content_weight", content_weight),
                        ("tv_weight", tv_weight)):
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.style_weight, self.content_weight = float(style_weight), float(content_weight)
        self.tv_weight = float(tv_weight)
        levels = len(features.channels)
        self.content_layer = min(1, levels - 1) if content_layer is None else int(content_layer)
        self.style_layers = (tuple(range(levels)) if style_layers is None
                             else tuple(int(k) for k in style_layers))
        if not 0 <= self.content_layer < levels or not self.style_layers or \
                not all(0 <= k < levels for k in self.style_layers):
            raise ValueError(f"layers must be in 0..{levels - 1}: content_layer "
                             f"{self.content_layer}, style_layers {self.style_layers}")
        with no_grad():
            feats = features(from_numpy(self.content))
            self._p = feats[self.content_layer]._data.copy()
            feats = features(from_numpy(self.style))
            self._a = [gram_matrix(feats[k])._data.copy() for k in self.style_layers]
        self._p_norm = float(np.sum(np.square(self._p, dtype=np.float64)))
        self._a_norm = [float(np.sum(np.square(a, dtype=np.float64))) for a in self._a]
        if self._p_norm == 0 or min(self._a_norm) == 0:
            raise ValueError("the content or style image gives all-zero features (a blank "
                             "image?); nothing to match")

    def losses(self, x):
        """dict of Tensors content, style, tv, total for the image Tensor x (1, C, H, W)."""
        feats = self.features(x)
        d = feats[self.content_layer] - from_numpy(self._p)
        content = (d * d).sum() * (1.0 / self._p_norm)
        style = None
        for k, a, norm in zip(self.style_layers, self._a, self._a_norm):
            e = gram_matrix(feats[k]) - from_numpy(a)
            term = (e * e).sum() * (1.0 / (norm * len(self._a)))
            style = term if style is None else style + term
        total = content * self.content_weight + style * self.style_weight
        out = {"content": content, "style": style}
        if self.tv_weight:
            dy = x[:, :, 1:, :] - x[:, :, :-1, :]
            dx = x[:, :, :, 1:] - x[:, :, :, :-1]
            tv = (dy * dy).mean() + (dx * dx).mean()
            total = total + tv * self.tv_weight
            out["tv"] = tv
        out["total"] = total
        return out

    def measure(self, img):
        """The losses of an image array (C, H, W) as floats (no gradients)."""
        with no_grad():
            return {k: float(v.item()) for k, v in
                    self.losses(from_numpy(_as_batch(img, self.dtype))).items()}


def transfer(objective, steps=300, optimizer="lbfgs", lr=None, init="content", seed=0,
             callback=None, history_size=20):
    """Optimize the pixels of an image against `objective` (a StyleObjective).

    steps: loss-and-gradient evaluations (one forward and backward each; L-BFGS's line search
    counts too, so both optimizers cost the same per step). optimizer: "lbfgs" (strong-Wolfe
    line search, lr default 1) or "adam" (lr default 0.02). init: "content" (start from the
    content image), "noise" (uniform noise of the content image's size) or an array.

    The pixels stay in [0, 1]. Adam's step is projected (clipped). L-BFGS would lose its
    curvature pairs to clipping between steps (clipping only the result undoes most of its
    progress), so it optimizes z with pixels = sigmoid(z), starting from z = logit(start
    clipped to [0.001, 0.999]).
    callback(step, losses dict of floats, image array (C, H, W)) after each evaluation.

    Returns (image (C, H, W) float array in [0, 1], history: list of loss dicts per step)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if lr is not None and not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    dtype = objective.dtype
    if isinstance(init, str):
        if init == "content":
            x0 = objective.content.copy()
        elif init == "noise":
            x0 = np.random.default_rng(seed).random(objective.content.shape).astype(dtype)
        else:
            raise ValueError(f"init must be 'content', 'noise' or an array, got {init!r}")
    else:
        x0 = _as_batch(init, dtype).copy()
        if x0.shape[1] != objective.content.shape[1]:
            raise ValueError(f"init has {x0.shape[1]} channels, the content image "
                             f"{objective.content.shape[1]}")
    sigmoid = optimizer == "lbfgs"
    if sigmoid:
        c = np.clip(x0, 1e-3, 1 - 1e-3)
        x0 = np.log(c / (1 - c)).astype(dtype)
    z = from_numpy(np.ascontiguousarray(x0)).requires_grad_(True)
    history = []

    def pixels():
        return z.sigmoid() if sigmoid else z

    def evaluate():
        z.grad = None
        x = pixels()
        parts = objective.losses(x)
        parts["total"].backward()
        vals = {k: float(v.item()) for k, v in parts.items()}
        history.append(vals)
        if callback is not None:
            callback(len(history), vals, x._data[0])
        return parts["total"]

    if optimizer == "adam":
        opt = Adam([z], lr=0.02 if lr is None else lr)
        for _ in range(steps):
            opt.zero_grad()
            evaluate()
            opt.step()
            np.clip(z._data, 0.0, 1.0, out=z._data)
    else:
        opt = LBFGS([z], lr=1.0 if lr is None else lr, max_iter=steps, max_eval=steps,
                    history_size=history_size, tolerance_grad=0.0, tolerance_change=0.0,
                    line_search_fn="strong_wolfe")
        while len(history) < steps:
            left = steps - len(history)
            opt.param_groups[0]["max_iter"] = opt.param_groups[0]["max_eval"] = left
            before = len(history)
            opt.step(evaluate)
            if len(history) == before + 1:     # it stopped at once (a zero gradient)
                break
    with no_grad():
        out = pixels()._data[0]
    return np.clip(out, 0.0, 1.0), history
