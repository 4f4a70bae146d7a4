"""A small convolutional network, and the vision lesson's training (its commands, `fastnn train
cnn` and `fastnn eval cnn`, are in cnn_cli.py; its checkpoints in checkpoint.py).

    model = CNN(in_channels=3, image_size=32, num_classes=6)      # the shapes images
    model = CNN(in_channels=1, image_size=8, num_classes=10)      # scikit-learn's 8x8 digits

Stages of conv 3x3 (padding 1, no bias) -> BatchNorm2d -> ReLU -> MaxPool2d(2), each halving the
image, then Flatten -> Dropout -> Linear. The first stage sees pixels and learns edge and colour
detectors; each later one combines the previous stage's maps over a window twice as large, so
the last sees whole objects. State-dict keys (features.0.weight, features.1.running_mean, ...,
classifier.2.weight) are those of the same module written with torch.nn, so weights move
between the two by name.
"""
import time

import numpy as np

from .. import nn
from ..optim import AdamW
from ..optim.lr_scheduler import OneCycleLR
from ..tensor import Tensor, manual_seed, no_grad
from ..training import fit

__all__ = ["CNN", "load_image_data", "train_cnn", "DATASETS"]

DEFAULT_CHANNELS = (32, 64, 128)
DATASETS = ("digits", "shapes")


class CNN(nn.Module):
    """len(channels) stages of conv-bn-relu-maxpool, then a linear classifier.

    in_channels, image_size (square images, at least 2 ** len(channels) pixels across),
    num_classes; channels: the width of each stage; dropout before the classifier."""

    def __init__(self, in_channels=3, image_size=32, num_classes=6, channels=DEFAULT_CHANNELS,
                 dropout=0.0):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"CNN: channels must list at least one positive width, got "
                             f"{channels}")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"CNN: in_channels and num_classes must be >= 1, got "
                             f"{in_channels} and {num_classes}")
        side = int(image_size) >> len(channels)
        if side < 1:
            raise ValueError(f"CNN: {len(channels)} stages halve the image {len(channels)} times; "
                             f"image_size {image_size} is too small (needs >= "
                             f"{2 ** len(channels)})")
        self.in_channels, self.image_size = int(in_channels), int(image_size)
        self.num_classes, self.channels, self.dropout = int(num_classes), channels, float(dropout)
        layers, c_in = [], self.in_channels
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(self.dropout),
                                        nn.Linear(c_in * side * side, self.num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

    def stages(self):
        """The stage boundaries: [(name, index of the stage's last module in features)]."""
        return [(f"stage{i + 1}", 4 * i + 3) for i in range(len(self.channels))]

    def predict(self, X, batch_size=500):
        """Class indices for images X (n, C, H, W) (array or Tensor), in eval mode."""
        X = X._data if isinstance(X, Tensor) else np.asarray(X, np.float32)
        was = self.training
        self.eval()
        out = []
        with no_grad():
            for i in range(0, len(X), batch_size):
                out.append(self(Tensor(np.ascontiguousarray(X[i:i + batch_size])))._data
                           .argmax(axis=-1))
        self.train(was)
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))


# ---------------------------------------------------------------- data
def load_image_data(data="digits", seed=0, n_train=None, n_test=None):
    """(X_train, y_train, X_test, y_test, class names) as NCHW float32 images in [0, 1].

    digits: scikit-learn's 8x8 digits as (n, 1, 8, 8), its stratified 80/20 split for `seed`.
    shapes: fastnn.data.shapes' 32x32 RGB objects, the train and test splits of `seed`
    (n_train and n_test images; defaults 12000 and 3000)."""
    if data == "digits":
        from ..data import load_digits
        d = load_digits(seed=seed)
        to_img = lambda X: np.ascontiguousarray(X.reshape(-1, 1, 8, 8))  # noqa: E731
        return (to_img(d.X_train), d.y_train, to_img(d.X_test), d.y_test,
                tuple(str(i) for i in range(10)))
    if data == "shapes":
        from ..data.shapes import CLASSES, SIZE, ShapesDataset

        def split(n, name):
            if n == 0:                              # (eval needs no training images)
                return np.zeros((0, 3, SIZE, SIZE), np.float32), np.zeros(0, np.int64)
            ds = ShapesDataset(n, seed=seed, split=name)
            return ds.images, ds.labels
        Xtr, ytr = split(12000 if n_train is None else n_train, "train")
        Xte, yte = split(3000 if n_test is None else n_test, "test")
        return Xtr, ytr, Xte, yte, tuple(CLASSES)
    raise ValueError(f"load_image_data: data must be one of {', '.join(DATASETS)}, got {data!r}")


class _Batches:
    """Shuffled mini-batches of (images, labels) as Tensors, each image shifted by up to `shift`
    pixels (zero-filled) and, with `flip`, mirrored left-right at random: what fit() iterates."""

    def __init__(self, X, y, batch_size, rng, shift=0, flip=False):
        self.X, self.y, self.batch_size, self.rng = X, y, batch_size, rng
        self.shift, self.flip = shift, flip

    def __len__(self):
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def _augment(self, xb):
        s = self.shift
        n, _, h, w = xb.shape
        if s:
            pad = np.zeros((n, xb.shape[1], h + 2 * s, w + 2 * s), xb.dtype)
            pad[:, :, s:s + h, s:s + w] = xb
            dy, dx = self.rng.integers(0, 2 * s + 1, (2, n))
            out = np.empty_like(xb)
            for i in range(n):
                out[i] = pad[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
            xb = out
        if self.flip:
            m = self.rng.random(n) < 0.5
            xb[m] = xb[m, :, :, ::-1]
        return xb

    def __iter__(self):
        order = self.rng.permutation(len(self.y))
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            xb = self.X[idx]
            if self.shift or self.flip:
                xb = self._augment(xb)
            yield Tensor(np.ascontiguousarray(xb)), Tensor(self.y[idx])


class _Eval:
    """Fixed-order batches for validation."""

    def __init__(self, X, y, batch_size=500):
        self.X, self.y, self.batch_size = X, y, batch_size

    def __len__(self):
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for i in range(0, len(self.y), self.batch_size):
            yield (Tensor(np.ascontiguousarray(self.X[i:i + self.batch_size])),
                   Tensor(self.y[i:i + self.batch_size]))


# settings per data set: those `fastnn train cnn` uses unless told otherwise
PRESETS = {
    "digits": dict(epochs=20, batch_size=32, lr=6e-3, weight_decay=0.05, channels=(32, 64, 128),
                   dropout=0.25, shift=0, flip=False, max_time=30.0),
    "shapes": dict(epochs=4, batch_size=64, lr=4e-3, weight_decay=5e-4, channels=(16, 32, 64),
                   dropout=0.1, shift=2, flip=True, max_time=180.0),
}


def train_cnn(data="digits", epochs=None, batch_size=None, lr=None, weight_decay=None,
              channels=None, dropout=None, seed=0, max_time=None, progress=True, plot=None,
              n_train=None, n_test=None, shift=None, flip=None, validate=True, device="cpu"):
    """Train a CNN on `data` ("digits" or "shapes") with AdamW and a one-cycle schedule; None
    takes PRESETS[data]'s value. Returns (model, history, test accuracy, info): info holds the
    data's class names, sizes, the seconds spent making the data and training. device: train
    there (model.to(device), each batch too); the model returned is on the CPU."""
    if data not in PRESETS:
        raise ValueError(f"train_cnn: data must be one of {', '.join(DATASETS)}, got {data!r}")
    cfg = dict(PRESETS[data])
    for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                     channels=channels, dropout=dropout, max_time=max_time, shift=shift,
                     flip=flip).items():
        if v is not None:
            cfg[k] = v
    manual_seed(seed)
    t0 = time.perf_counter()
    Xtr, ytr, Xte, yte, classes = load_image_data(data, seed, n_train, n_test)
    data_seconds = time.perf_counter() - t0
    model = CNN(Xtr.shape[1], Xtr.shape[-1], len(classes), cfg["channels"], cfg["dropout"])
    model.to(device)
    opt = AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    train = _Batches(Xtr, ytr, cfg["batch_size"], np.random.default_rng(seed), cfg["shift"],
                     cfg["flip"])
    sched = OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * len(train),
                       pct_start=0.2)
    history = fit(model, opt, train, epochs=cfg["epochs"],
                  val_loader=_Eval(Xte, yte) if validate else None, scheduler=sched,
                  scheduler_interval="batch", max_time=cfg["max_time"], progress=progress,
                  plot=plot, device=None if device == "cpu" else device)
    model.to("cpu")
    acc = model.accuracy(Xte, yte)
    info = dict(classes=classes, n_train=len(ytr), n_test=len(yte), data_seconds=data_seconds,
                train_seconds=history["seconds"][-1], config=cfg)
    return model, history, acc, info
