"""Built-in evaluation of a digits diffusion model.

- prompt accuracy: the share of samples a digits classifier (an MLP trained here with fastnn on
  the real training digits) reads as the prompted digit;
- Fréchet distance between the classifier's hidden features of the samples and of held-out real
  digits, with the real-vs-real distance (training digits vs held-out digits) beside it;
- copy rate: the share of samples closer to some training image than any held-out real digit is
  to its nearest training image (closer than genuinely new digits ever get: memorized).
"""
import time

import numpy as np

from .. import nn, optim
from ..nn import functional as F
from ..tensor import Tensor, manual_seed, no_grad
from ..data.shapes import CLASSES, COLORS, make_shapes
from .diffusion import (digits_split, shapes_to_pixel_space, shapes_training_data, to_model_space,
                        to_pixel_space)
from .text_encoder import make_prompt


class DigitsClassifier(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def features(self, x):
        return F.relu(self.fc1(x))

    def forward(self, x):
        return self.fc2(self.features(x))


def train_classifier(x, y, epochs=60, seed=0):
    """A small MLP on model-space digits (N, 64); a few seconds on 2 cores."""
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    clf = DigitsClassifier()
    opt = optim.Adam(clf.parameters(), lr=3e-3)
    y = np.asarray(y, np.int64)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            # light pixel noise makes the classifier judge shapes, not exact pixel values
            xb = x[idx] + 0.05 * rng.standard_normal(x[idx].shape).astype(np.float32)
            loss = F.cross_entropy(clf(Tensor(xb)), Tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    return clf


@no_grad()
def _features(clf, x):
    return clf.features(Tensor(np.asarray(x, np.float32)))._data.astype(np.float64)


@no_grad()
def _predict(clf, x):
    return clf(Tensor(np.asarray(x, np.float32)))._data.argmax(axis=1)


def frechet_distance(f1, f2):
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two feature sets (N, d)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # tr((S1 S2)^(1/2)) = sum of sqrt eigenvalues of the symmetric S1^(1/2) S2 S1^(1/2)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def _nearest_distances(x, ref):
    """Euclidean distance from each row of x to its nearest row of ref (pixel space 0..16)."""
    d2 = (x ** 2).sum(1)[:, None] - 2 * x @ ref.T + (ref ** 2).sum(1)[None]
    return np.sqrt(np.clip(d2.min(axis=1), 0, None))


def evaluate(diff, scales=(0.0, 1.0, 3.0), per_prompt=50, sampler="ddim", steps=25, seed=0,
             out=None):
    """Print and return, per guidance scale, accuracy, Fréchet distance and copy rate."""
    xtr, ytr, xte, yte = digits_split()
    mtr, mte = to_model_space(xtr), to_model_space(xte)
    clf = train_classifier(mtr, ytr, seed=seed)
    test_acc = float((_predict(clf, mte) == np.asarray(yte)).mean())
    f_test = _features(clf, mte)
    # real vs real: as many training digits as samples, against the same held-out digits
    rng = np.random.default_rng(seed)
    n_samples = per_prompt * 10
    pick = rng.choice(len(mtr), size=min(n_samples, len(mtr)), replace=False)
    fd_real = frechet_distance(_features(clf, mtr[pick]), f_test)
    ptr = np.asarray(xtr, np.float64).reshape(len(xtr), -1)
    threshold = _nearest_distances(np.asarray(xte, np.float64).reshape(len(xte), -1), ptr).min()
    if out:
        print(f"classifier: test accuracy {test_acc:.3f} on {len(xte)} held-out real digits",
              file=out)
        print(f"real-vs-real Fréchet distance: {fd_real:.3f}   copy threshold (closest held-out "
              f"real digit to the training set): {threshold:.2f}", file=out)
        print(f"{'guidance':>8} {'accuracy':>9} {'worst digit':>12} {'Fréchet':>8} "
              f"{'FD/real':>8} {'copies':>7} {'sample s':>9}", file=out)
    labels = np.repeat(np.arange(10), per_prompt)
    results = []
    for w in scales:
        t0 = time.perf_counter()
        x = diff.sample(labels, guidance=w, sampler=sampler, steps=steps, seed=seed)
        secs = time.perf_counter() - t0
        pred = _predict(clf, x)
        per_digit = np.array([(pred[labels == d] == d).mean() for d in range(10)])
        fd = frechet_distance(_features(clf, x), f_test)
        px = to_pixel_space(x).reshape(len(x), -1).astype(np.float64)
        copies = float((_nearest_distances(px, ptr) < threshold).mean())
        row = dict(guidance=w, accuracy=float((pred == labels).mean()),
                   per_digit=per_digit.tolist(), frechet=fd, frechet_real=fd_real,
                   copy_rate=copies, sample_seconds=secs)
        results.append(row)
        if out:
            worst = int(per_digit.argmin())
            print(f"{w:8.1f} {row['accuracy']:9.3f} {worst:>5d} ({per_digit[worst]:.2f}) "
                  f"{fd:8.3f} {fd / fd_real:8.2f} {copies:7.3f} {secs:9.2f}", file=out)
    return dict(classifier_accuracy=test_acc, frechet_real=fd_real, copy_threshold=threshold,
                results=results)


# ---------------------------------------------------------------- the shapes model
def _rgb_to_hsv(images):
    """(N, 3, H, W) in [0, 1] -> hue, saturation, value, each (N, H, W)."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    mx, mn = images.max(axis=1), images.min(axis=1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2,
                                                          (r - g) / safe + 4)) / 6.0
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.where(d > 0, h, 0.0), s, mx


def read_colors(images, min_saturation=0.5, min_value=0.35):
    """The named colour (index in shapes' COLORS) of each image's object, -1 if none is seen.

    The object mask: pixels more saturated than any background (backgrounds are drawn with
    saturation <= 0.35, objects >= 0.35, most >= 0.6) and not dark (eyes, wheels, doors). The
    colour: the palette hue nearest the mask's circular mean hue, taken over the largest group of
    mask pixels within 0.06 of one palette hue, so a tree's brown trunk or a flower's yellow
    centre does not drag the mean. Pink is light and less saturated: pixels whose hue is near
    pink's count with a lower saturation floor."""
    from ..data.shapes import _PALETTE
    h, s, v = _rgb_to_hsv(np.asarray(images, np.float64))
    hues = np.array([_PALETTE[c][0] for c in COLORS])
    # circular distance of every pixel's hue to every palette hue: (N, H, W, K)
    dist = np.abs(h[..., None] - hues)
    dist = np.minimum(dist, 1 - dist)
    nearest = dist.argmin(-1)
    pink = COLORS.index("pink")
    # pink objects are bright (value >= 0.9); a named pink background is darker (<= 0.72)
    floor = np.where((nearest == pink) & (v > 0.82), 0.3, min_saturation)
    mask = (s > floor) & (v > min_value) & (dist.min(-1) < 0.06)
    out = np.full(len(h), -1, np.int64)
    for i in range(len(h)):
        counts = np.bincount(nearest[i][mask[i]], minlength=len(COLORS))
        if counts.sum() >= 8:
            k = counts.argmax()
            sel = mask[i] & (nearest[i] == k)
            ang = 2 * np.pi * h[i][sel]          # the mean hue of the mask, on the circle
            mean = (np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi)) % 1.0
            d = np.abs(mean - hues)
            out[i] = int(np.minimum(d, 1 - d).argmin())
    return out


def read_background_colors(images, ring=2, min_saturation=0.2):
    """The named colour (index in COLORS) of each image's background, -1 if it looks grey.

    Read from the outer `ring` pixels, where the object seldom reaches: the palette hue nearest
    the saturation-weighted circular mean hue of the ring's tinted pixels (saturation above
    min_saturation; objects at the edge are outvoted by the rest of the ring), or -1 when
    fewer than a quarter of the ring's pixels are tinted."""
    from ..data.shapes import _PALETTE
    h, s, _ = _rgb_to_hsv(np.asarray(images, np.float64))
    edge = np.ones(h.shape[1:], bool)
    edge[ring:-ring, ring:-ring] = False
    h, s = h[:, edge], s[:, edge]                        # (N, ring pixels)
    hues = np.array([_PALETTE[c][0] for c in COLORS])
    w = np.where(s > min_saturation, s, 0.0)
    ang = 2 * np.pi * h
    mean = (np.arctan2((w * np.sin(ang)).sum(1), (w * np.cos(ang)).sum(1)) / (2 * np.pi)) % 1.0
    d = np.abs(mean[:, None] - hues)
    out = np.minimum(d, 1 - d).argmin(1)
    return np.where((s > min_saturation).mean(1) >= 0.25, out, -1).astype(np.int64)


@no_grad()
def cnn_features(cnn, images, batch=500):
    """The CNN's last conv stage, averaged over positions: (N, channels) float64."""
    was = cnn.training
    cnn.eval()
    out = []
    for i in range(0, len(images), batch):
        f = cnn.features(Tensor(np.ascontiguousarray(images[i:i + batch], np.float32)))._data
        out.append(f.mean(axis=(2, 3)))
    cnn.train(was)
    return np.concatenate(out).astype(np.float64)


def evaluate_shapes(diff, cnn, scales=(2.0,), per_prompt=8, sampler="ddim", steps=25, seed=0,
                    n_train=10000, n_real=1000, out=None, bg_per_object=8):
    """Samples for every object-colour pair (per_prompt each, prompts alternating Spanish and
    English), judged by the shapes CNN (object) and read_colors (colour), seen and held-out
    pairs apart; Fréchet distance in the CNN's feature space to held-out real images (and
    real-vs-real); near-copies of the training images. Then bg_per_object prompts per object
    that also name a background colour ("un pez rojo sobre fondo azul", every object colour
    once, the background another), judged on object, colour and read_background_colors.
    Prints and returns a dict."""
    cfg = diff.config
    held = set(cfg.holdout_pairs())
    pairs = [(o, c) for o in range(len(CLASSES)) for c in range(len(COLORS))]
    rng = np.random.default_rng(seed)
    obj = np.repeat([p[0] for p in pairs], per_prompt)
    col = np.repeat([p[1] for p in pairs], per_prompt)
    prompts = [make_prompt(rng, o, c, lang=("es" if i % 2 else "en"))
               for i, (o, c) in enumerate(zip(obj, col))]
    is_held = np.array([(o, c) in held for o, c in zip(obj, col)])
    # prompts with a background colour: object o, colour c, background (c + 1 + (o + i) % 7)
    b_obj = np.repeat(np.arange(len(CLASSES)), bg_per_object)
    b_col = np.tile(np.arange(bg_per_object) % len(COLORS), len(CLASSES))
    b_bg = (b_col + 1 + (b_obj + np.arange(len(b_obj))) % (len(COLORS) - 1)) % len(COLORS)
    b_prompts = [make_prompt(rng, o, c, lang=("es" if i % 2 else "en"), bg_color=k)
                 for i, (o, c, k) in enumerate(zip(b_obj, b_col, b_bg))]
    # real images like the training ones (all pairs, the training's backgrounds), two sets
    kinds = np.array(cfg.background_ids())
    real = [make_shapes(n_real, seed=np.random.SeedSequence([seed, tag]), distractors=False,
                        backgrounds=kinds[np.random.default_rng(tag).integers(0, len(kinds),
                                                                               n_real)])[0]
            for tag in (0xEA1, 0xEA2)]
    real_a, real_b = real
    f_real = cnn_features(cnn, real_a)
    fd_real = frechet_distance(cnn_features(cnn, real_b), f_real)
    xtr = shapes_training_data(n_train, seed, cfg)[0]
    ptr = ((xtr + 1) * 0.5).reshape(len(xtr), -1).astype(np.float32)
    threshold = _nearest_distances(real_b.reshape(len(real_b), -1).astype(np.float32), ptr).min()
    # the colour reader on real images: how much of a miss is the reader's, not the model's
    ra, la, aa = make_shapes(600, seed=np.random.SeedSequence([seed, 0xC01]), distractors=False)
    reader_acc = float((read_colors(ra) == aa["color"]).mean())
    cnn_acc = float((cnn.predict(ra) == la).mean())
    if out:
        print(f"judge CNN: {cnn_acc:.3f} object accuracy on 600 real images; colour reader: "
              f"{reader_acc:.3f} on the same; real-vs-real Fréchet {fd_real:.3f}; copy "
              f"threshold {threshold:.2f}", file=out)
        print(f"{'guidance':>8} {'object':>7} {'colour':>7} {'both':>6} {'held obj':>9} "
              f"{'held col':>9} {'held both':>9} {'Fréchet':>8} {'copies':>7} {'sample s':>9} "
              f"{'bg: obj':>8} {'col':>5} {'bg col':>6}", file=out)
    results = []
    for w in scales:
        t0 = time.perf_counter()
        x = np.concatenate([diff.sample(prompts[i:i + 64], guidance=w, sampler=sampler,
                                        steps=steps, seed=seed + i)
                            for i in range(0, len(prompts), 64)])
        secs = time.perf_counter() - t0
        images = shapes_to_pixel_space(x)
        ok_obj = cnn.predict(images) == obj
        ok_col = read_colors(images) == col
        fd = frechet_distance(cnn_features(cnn, images), f_real)
        copies = float((_nearest_distances(images.reshape(len(images), -1), ptr)
                        < threshold).mean())
        seen = ~is_held
        bg = {}
        if len(b_prompts):
            xb = np.concatenate([diff.sample(b_prompts[i:i + 64], guidance=w, sampler=sampler,
                                             steps=steps, seed=seed + 7919 + i)
                                 for i in range(0, len(b_prompts), 64)])
            ib = shapes_to_pixel_space(xb)
            bg = dict(bg_object=float((cnn.predict(ib) == b_obj).mean()),
                      bg_prompt_color=float((read_colors(ib) == b_col).mean()),
                      bg_color=float((read_background_colors(ib) == b_bg).mean()),
                      bg_n_samples=len(ib))
        row = dict(guidance=w, object=float(ok_obj[seen].mean()),
                   color=float(ok_col[seen].mean()), both=float((ok_obj & ok_col)[seen].mean()),
                   held_object=float(ok_obj[is_held].mean()) if is_held.any() else None,
                   held_color=float(ok_col[is_held].mean()) if is_held.any() else None,
                   held_both=float((ok_obj & ok_col)[is_held].mean()) if is_held.any() else None,
                   frechet=fd, frechet_real=fd_real, copy_rate=copies, sample_seconds=secs,
                   n_samples=len(x), **bg)
        results.append(row)
        if out:
            fmt = lambda v: "   -" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"{w:8.1f} {row['object']:7.3f} {row['color']:7.3f} {row['both']:6.3f} "
                  f"{fmt(row['held_object']):>9} {fmt(row['held_color']):>9} "
                  f"{fmt(row['held_both']):>9} {fd:8.3f} {copies:7.3f} {secs:9.1f} "
                  f"{fmt(row.get('bg_object')):>8} {fmt(row.get('bg_prompt_color')):>5} "
                  f"{fmt(row.get('bg_color')):>6}", file=out)
    return dict(cnn_accuracy=cnn_acc, color_reader_accuracy=reader_acc, frechet_real=fd_real,
                copy_threshold=float(threshold), results=results)
