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
from .diffusion import digits_split, to_model_space, to_pixel_space


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
