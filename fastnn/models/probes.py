"""Linear probes: how much of a property a layer's features make linearly readable.

For each layer, the activations of held-out images are averaged over space (one number per
channel), and a multinomial logistic regression (scikit-learn's, on standardized features) is
fitted on part of the images and scored on the rest. The input pixels, averaged over patches
(an 8x8 grid of them: 4x4-pixel patches of a 32x32 image, single pixels of an 8x8 digit), are
layer 0: the baseline of what is readable without any learned feature.

    feats = probe_features(stages, images)                     # {"pixels": ..., "stage1": ...}
    table = run_probes(feats, {"object class": labels, "background": attrs["background"]})
    print(format_table(table))

A table is a dict: layers (names, in order), targets (names), accuracy {target: [one per
layer]}, stderr {target: [the binomial standard error of each accuracy]}, chance {target: the
share of the commonest value in the test part}, n_train, n_test, features {layer: number of
features}.
"""
import numpy as np

from ..errors import require

__all__ = ["probe_features", "run_probes", "format_table", "shapes_targets", "pixel_features",
           "PIXEL_GRID"]

PIXEL_GRID = 8


def pixel_features(images, patch=None):
    """Images (n, C, H, W) averaged over patch x patch blocks (default: H // 8, an 8x8 grid),
    flattened: (n, C*H*W/patch^2)."""
    x = np.asarray(images, np.float32)
    n, c, h, w = x.shape
    patch = max(1, h // PIXEL_GRID) if patch is None else int(patch)
    h2, w2 = h // patch, w // patch
    x = x[:, :, :h2 * patch, :w2 * patch].reshape(n, c, h2, patch, w2, patch)
    return x.mean(axis=(3, 5)).reshape(n, -1)


def probe_features(stages, images, batch_size=256):
    """{"pixels": pooled pixels, stage name: global-average-pooled activations, ...}."""
    feats = {"pixels": pixel_features(images)}
    for name, f in zip(stages.names, stages.pooled(images, batch_size)):
        feats[name] = f
    return feats


def shapes_targets(labels, attributes):
    """The probe targets of the shapes data: the object class and the primitive-level facts."""
    return {"object class": np.asarray(labels),
            "contains circle": np.asarray(attributes["contains_circle"]).astype(np.int64),
            "edge orientation": np.asarray(attributes["edge_orientation"]),
            "background texture": np.asarray(attributes["background"]),
            "object colour": np.asarray(attributes["color"])}


def run_probes(features, targets, train_fraction=2 / 3, C=1.0, max_iter=500, seed=0):
    """Fit one logistic regression per (layer, target) on the first train_fraction of the
    images (after a seeded shuffle) and score it on the rest. Returns the table (see the module
    docstring)."""
    require("sklearn", "the linear probes")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    import contextlib
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    try:   # one BLAS thread: these small fits run ~40x faster than with a contended pool
        from threadpoolctl import threadpool_limits
        one_thread = threadpool_limits(1)
    except ImportError:
        one_thread = contextlib.nullcontext()

    layers = list(features)
    n = len(next(iter(features.values())))
    if n < 4:
        raise ValueError(f"run_probes: need at least 4 images, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * train_fraction))
    tr, te = order[:cut], order[cut:]
    table = {"layers": layers, "targets": list(targets), "accuracy": {}, "chance": {},
             "stderr": {},
             "n_train": int(len(tr)), "n_test": int(len(te)),
             "features": {k: int(np.asarray(v).shape[1]) for k, v in features.items()}}
    with one_thread:
        _fit_all(features, targets, layers, tr, te, table, C, max_iter, LogisticRegression,
                 StandardScaler, ConvergenceWarning, warnings)
    return table


def _fit_all(features, targets, layers, tr, te, table, C, max_iter, LogisticRegression,
             StandardScaler, ConvergenceWarning, warnings):
    scaled = {}
    for layer in layers:
        X = np.asarray(features[layer], np.float64)
        scaler = StandardScaler().fit(X[tr])
        scaled[layer] = scaler.transform(X[tr]), scaler.transform(X[te])
    for t, y in targets.items():
        y = np.asarray(y)
        counts = np.bincount(y[te].astype(np.int64))
        table["chance"][t] = float(counts.max() / len(te))
        accs = []
        for layer in layers:
            if len(np.unique(y[tr])) < 2:
                accs.append(float(np.mean(y[te] == y[tr][0])))
                continue
            Xtr, Xte = scaled[layer]
            clf = LogisticRegression(C=C, max_iter=max_iter)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(Xtr, y[tr])
            accs.append(float(np.mean(clf.predict(Xte) == y[te])))
        table["accuracy"][t] = accs
        # binomial standard error of each accuracy on the scored images
        table["stderr"][t] = [float(np.sqrt(a * (1 - a) / len(te))) for a in accs]


def format_table(table):
    """The table as text: one row per layer, one column per target, chance in the last row."""
    targets = table["targets"]
    w0 = max(8, max(len(x) for x in table["layers"]) + 2)
    widths = [max(9, len(t) + 2) for t in targets]
    lines = ["layer".ljust(w0) + "features".rjust(10)
             + "".join(t.rjust(w) for t, w in zip(targets, widths))]
    for i, layer in enumerate(table["layers"]):
        lines.append(layer.ljust(w0) + str(table["features"].get(layer, "")).rjust(10)
                     + "".join(f"{table['accuracy'][t][i]:.3f}".rjust(w)
                               for t, w in zip(targets, widths)))
    lines.append("chance".ljust(w0) + "".rjust(10)
                 + "".join(f"{table['chance'][t]:.3f}".rjust(w) for t, w in zip(targets, widths)))
    return "\n".join(lines)
