"""What each conv stage of a CNN responds to: its activations, the inputs that excite a channel
most (activation maximization), and the images that do (the lesson's `fastnn features`, in
features_cli.py; the linear probes are in probes.py).

    stages = ConvStages(model)                   # any Sequential-like stack of conv stages
    maps = stages.activations(images)            # one (n, C, H, W) array per stage
    pooled = stages.pooled(images)               # one (n, C) array per stage (global average)
    best = maximize_activation(stages, 1, [0, 5, 7])   # inputs that excite stage 2's channels

A model's stages: fastnn.models.CNN says where its stages end (CNN.stages()); any other model
that is an nn.Sequential (or has a `features` Sequential), nested Sequentials included, is cut
after each Conv2d's block: a stage runs from a Conv2d up to the next Conv2d, or up to the first
Flatten / Linear / AdaptiveAvgPool2d after the last one.
"""
import numpy as np

from .. import nn
from ..tensor import Tensor, no_grad

__all__ = ["ConvStages", "maximize_activation", "top_images", "gaussian_blur",
           "pick_channels", "reinitialized", "filter_structure"]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid)
_HEAD = ("Flatten", "Linear", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Dropout")


def _leaves(seq):
    out = []
    for m in seq:
        if isinstance(m, nn.Sequential):
            out.extend(_leaves(m))
        else:
            out.append(m)
    return out


class ConvStages:
    """The conv stages of `model`, runnable one prefix at a time.

    .modules: the modules in order; .ends[k]: the index of stage k's last module (its output is
    the stage's output, after pooling); .map_ends[k]: the last module before the stage's pooling
    (the full-resolution feature maps); .names; .convs[k]: stage k's Conv2d."""

    def __init__(self, model):
        self.model = model
        features = getattr(model, "features", None)
        if hasattr(model, "stages") and isinstance(features, nn.Sequential):
            self.modules = list(features)
            stages = model.stages()
            self.names = [str(n) for n, _ in stages]
            self.ends = [int(i) for _, i in stages]
        else:
            if isinstance(model, nn.Sequential):
                seq = model
            elif isinstance(features, nn.Sequential):
                seq = features
            else:
                raise ValueError(f"{type(model).__name__} is not a stack of conv stages: "
                                 f"expected an nn.Sequential, a model with a `features` "
                                 f"Sequential, or fastnn.models.CNN")
            self.modules = _leaves(seq)
            conv = [i for i, m in enumerate(self.modules) if isinstance(m, nn.Conv2d)]
            if not conv:
                raise ValueError(f"{type(model).__name__} has no Conv2d layer")
            stop = len(self.modules)
            for i in range(conv[-1] + 1, len(self.modules)):
                if type(self.modules[i]).__name__ in _HEAD:
                    stop = i
                    break
            self.modules = self.modules[:stop]
            self.ends = [c - 1 for c in conv[1:]] + [stop - 1]
            self.names = [f"stage{k + 1}" for k in range(len(conv))]
        starts = [0] + [e + 1 for e in self.ends[:-1]]
        self.convs = []
        for s, e in zip(starts, self.ends):
            c = [m for m in self.modules[s:e + 1] if isinstance(m, nn.Conv2d)]
            if not c:
                raise ValueError(f"stage ending at module {e} has no Conv2d")
            self.convs.append(c[0])
        self.map_ends, self.pre_ends = [], []
        for s, e in zip(starts, self.ends):
            end = e
            while end > s and "Pool" in type(self.modules[end]).__name__:
                end -= 1
            self.map_ends.append(end)
            # before the stage's first activation function: the conv (+ norm) output, which
            # has a gradient even where the ReLU after it is off
            pre = e
            for i in range(s, e + 1):
                if isinstance(self.modules[i], _ACTIVATIONS):
                    pre = i - 1
                    break
            self.pre_ends.append(max(pre, s))

    def __len__(self):
        return len(self.ends)

    @property
    def in_channels(self):
        return self.convs[0].in_channels

    def run(self, x, upto=None, maps=False, pre=False):
        """Tensor x through the stages 0..upto (default all); returns the list of each stage's
        output Tensor (its feature maps before pooling with maps=True, before the activation
        function with pre=True). Keeps the graph."""
        upto = len(self.ends) - 1 if upto is None else int(upto)
        marks = self.pre_ends if pre else (self.map_ends if maps else self.ends)
        want = {marks[k]: k for k in range(upto + 1)}
        outs = [None] * (upto + 1)
        for i, m in enumerate(self.modules[:max(marks[:upto + 1]) + 1]):
            x = m(x)
            if i in want:
                outs[want[i]] = x
        return outs

    def activations(self, images, maps=False, batch_size=256):
        """Each stage's outputs for images (n, C, H, W) as numpy arrays, in eval mode."""
        images = np.asarray(getattr(images, "_data", images), np.float32)
        was = self.model.training
        self.model.eval()
        parts = [[] for _ in self.ends]
        try:
            with no_grad():
                for i in range(0, len(images), batch_size):
                    outs = self.run(Tensor(np.ascontiguousarray(images[i:i + batch_size])),
                                    maps=maps)
                    for k, o in enumerate(outs):
                        parts[k].append(np.asarray(o._data))
        finally:
            self.model.train(was)
        return [np.concatenate(p) for p in parts]

    def pooled(self, images, batch_size=256):
        """Each stage's output averaged over space: one (n, channels) array per stage."""
        images = np.asarray(getattr(images, "_data", images), np.float32)
        was = self.model.training
        self.model.eval()
        parts = [[] for _ in self.ends]
        try:
            with no_grad():
                for i in range(0, len(images), batch_size):
                    outs = self.run(Tensor(np.ascontiguousarray(images[i:i + batch_size])))
                    for k, o in enumerate(outs):
                        parts[k].append(np.asarray(o._data).mean(axis=(2, 3)))
        finally:
            self.model.train(was)
        return [np.concatenate(p) for p in parts]


def reinitialized(model, seed=0):
    """A copy of model with fresh random weights (each layer's reset_parameters, BatchNorm's
    running statistics reset): the control that shows what training added."""
    import copy
    from ..tensor import manual_seed

    fresh = copy.deepcopy(model)
    manual_seed(seed)
    for m in fresh.modules():
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh


def filter_structure(weight):
    """How edge-like conv filters (O, I, kH, kW) are: each filter's squared weights split into
    a flat part (its mean per input channel: a colour / brightness detector), a linear ramp
    (a plane across the window: an oriented edge detector; its angle is the edge's
    orientation) and the rest (finer structure). The three are orthogonal, so the fractions
    add up to 1. For weights drawn at random they are about 1/k^2, 2/k^2 and the rest.

    Returns {"flat", "ramp", "rest"}: the means over the filters, and "per_filter": an (O, 3)
    array of the fractions."""
    w = np.asarray(getattr(weight, "_data", weight), np.float64)
    o, i, kh, kw = w.shape
    yy, xx = np.mgrid[0:kh, 0:kw].astype(np.float64)
    xx -= xx.mean()
    yy -= yy.mean()
    total = (w ** 2).sum(axis=(1, 2, 3))
    mean = w.mean(axis=(2, 3))
    flat = (mean ** 2).sum(axis=1) * kh * kw
    ramp = np.zeros(o)
    for basis in (xx, yy):
        norm = (basis ** 2).sum()
        if norm > 0:
            ramp += ((w * basis).sum(axis=(2, 3)) ** 2).sum(axis=1) / norm
    total = np.where(total > 0, total, 1.0)
    per = np.stack([flat / total, ramp / total, 1 - (flat + ramp) / total], axis=1)
    return {"flat": float(per[:, 0].mean()), "ramp": float(per[:, 1].mean()),
            "rest": float(per[:, 2].mean()), "per_filter": per}


def gaussian_blur(x, sigma=0.5):
    """Blur images (n, C, H, W) with a separable Gaussian (5 taps, reflected edges)."""
    if sigma <= 0:
        return x
    t = np.arange(-2, 3, dtype=np.float64)
    k = np.exp(-t * t / (2 * sigma * sigma))
    k = (k / k.sum()).astype(x.dtype)
    p = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="reflect")
    y = sum(k[i] * p[:, :, i:i + x.shape[2]] for i in range(5))
    p = np.pad(y, ((0, 0), (0, 0), (0, 0), (2, 2)), mode="reflect")
    return sum(k[i] * p[:, :, :, i:i + x.shape[3]] for i in range(5))


def maximize_activation(stages, stage, channels, size=32, steps=128, lr=0.03, jitter=2,
                        blur=0.5, blur_every=4, decay=0.002, seed=0):
    """Inputs that excite channels of one stage most: gradient ascent on the input image.

    Starts from grey plus a little noise, one image per channel (optimized together: in eval
    mode the images do not interact), and maximizes the channel's mean over space before the
    stage's activation function (a ReLU's output has no gradient where it is off).
    Regularization keeps them readable: a random shift of up to `jitter` pixels each step (the
    pattern must work wherever it lands), a Gaussian blur every `blur_every` steps (suppresses
    the high-frequency noise gradients love), a small pull to grey (`decay`), and pixels clipped
    to [0, 1]. Steps are normalized (mean |gradient| per image = 1), lr is the step in pixels.

    Returns (images (K, C, size, size) float32, and the channels' mean stage outputs (after
    activation and pooling) for the starting images (K,) and for the final ones (K,))."""
    channels = [int(c) for c in channels]
    rng = np.random.default_rng(seed)
    k = len(channels)
    c_in = stages.in_channels
    x = (0.5 + 0.05 * rng.standard_normal((k, c_in, size, size))).astype(np.float32)
    x = np.clip(x, 0, 1)
    model = stages.model
    was = model.training
    model.eval()

    def objective(img, grad, pre=True):
        xt = Tensor(np.ascontiguousarray(img), requires_grad=grad)
        out = stages.run(xt, upto=stage, pre=pre)[-1]
        m = np.zeros((k,) + tuple(out.shape[1:2]) + (1, 1), np.float32)
        m[np.arange(k), channels] = 1.0 / (out.shape[2] * out.shape[3])
        per_image = (out * Tensor(m)).sum(dim=(1, 2, 3))
        if grad:
            per_image.sum().backward()
            return np.asarray(per_image._data), np.asarray(xt.grad._data if hasattr(
                xt.grad, "_data") else xt.grad)
        return np.asarray(per_image._data), None

    try:
        with no_grad():
            start, _ = objective(x, False, pre=False)
        for step in range(steps):
            dy, dx = (rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0))
            shifted = np.roll(x, (dy, dx), axis=(2, 3))
            _, g = objective(shifted, True)
            g = np.roll(g, (-dy, -dx), axis=(2, 3))
            g /= np.abs(g).mean(axis=(1, 2, 3), keepdims=True) + 1e-12
            x = x + lr * g - decay * (x - 0.5)
            if blur and step % blur_every == blur_every - 1 and step < steps - 1:
                x = gaussian_blur(x, blur)
            x = np.clip(x, 0, 1).astype(np.float32)
        with no_grad():
            end, _ = objective(x, False, pre=False)
    finally:
        model.train(was)
    return x, start, end


def pick_channels(pooled, k, labels=None):
    """k channels to show. Without labels: those whose pooled activation varies most across
    images (dead or constant channels say nothing), in channel order. With labels (one class
    per image): the most class-selective channels (class mean minus overall mean, in standard
    deviations), taking the best channel of each class in turn, so that the rows show the
    different classes a stage separates (the same rule at every stage)."""
    pooled = np.asarray(pooled, np.float64)
    spread = pooled.std(axis=0)
    k = min(int(k), pooled.shape[1])
    if labels is None:
        return np.sort(np.argsort(-spread, kind="stable")[:k])
    labels = np.asarray(labels)
    classes = np.unique(labels)
    z = np.stack([(pooled[labels == c].mean(axis=0) - pooled.mean(axis=0)) for c in classes])
    z = z / np.where(spread > 0, spread, np.inf)
    best_class, score = z.argmax(axis=0), z.max(axis=0)
    chosen = []
    by_class = [[ch for ch in np.argsort(-score, kind="stable") if best_class[ch] == i]
                for i in range(len(classes))]
    class_order = np.argsort([-score[b[0]] if b else np.inf for b in by_class], kind="stable")
    while len(chosen) < k and any(by_class):
        for i in class_order:
            if by_class[i] and len(chosen) < k:
                chosen.append(int(by_class[i].pop(0)))
    return np.array(chosen, np.int64)


def top_images(pooled, channels, k=4):
    """For each channel, the indices of the k images with the highest pooled activation."""
    pooled = np.asarray(pooled)
    return np.stack([np.argsort(-pooled[:, c], kind="stable")[:k] for c in channels])
