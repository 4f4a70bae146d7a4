"""The lessons' figures beyond images: decision boundaries, a network diagram, attention heatmaps,
temperature bars, a loss surface with its descent path, line and bar charts, and a roofline.

As plots.py: each function takes numpy arrays (or Tensors), draws on matplotlib's Agg canvas (no
pyplot), returns the Figure and, given path=, writes it as a PNG. Labels are the caller's
(the lessons pass Spanish ones); the defaults are English.
"""
import numpy as np

from .plots import _array, _figure, _finish

__all__ = ["decision_boundaries", "network_diagram", "attention_heatmaps", "temperature_bars",
           "loss_surface", "line_chart", "bar_chart", "roofline", "heatmaps"]

_CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
_PATH_COLORS = ("#ff4040", "#ffffff", "#ffb000", "#40c0ff")


def decision_boundaries(panels, path=None, title=None, resolution=200, margin=0.5,
                        labels=("x1", "x2")):
    """One panel per classifier of 2-D points: the plane coloured by the predicted class, the
    boundary drawn, the points on top with their true class.

    panels: a list of dicts {"title", "predict", "X" (N, 2), "y" (N,)}; predict maps an (M, 2)
    float32 array to M class indices (or to M scores, thresholded at 0.5)."""
    if not panels:
        raise ValueError("decision_boundaries: no panels")
    fig = _figure(3.0 * len(panels), 3.2 + (0.3 if title else 0))
    for i, p in enumerate(panels):
        X, y = _array(p["X"]), np.asarray(p["y"]).astype(int)
        if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(y):
            raise ValueError(f"decision_boundaries: X must be (N, 2) with one label each, got "
                             f"X {X.shape} and y {y.shape}")
        lo, hi = X.min(axis=0) - margin, X.max(axis=0) + margin
        g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                             np.linspace(lo[1], hi[1], resolution))
        grid = np.stack([g1.ravel(), g2.ravel()], axis=1).astype(np.float32)
        z = _array(p["predict"](grid)).reshape(-1)
        if z.shape[0] != grid.shape[0]:
            raise ValueError(f"decision_boundaries: predict returned {z.shape[0]} values for "
                             f"{grid.shape[0]} points")
        if not np.all(np.equal(np.mod(z, 1), 0)):     # scores, not classes
            z = (z > 0.5).astype(float)
        z = z.reshape(g1.shape)
        ax = fig.add_subplot(1, len(panels), i + 1)
        from matplotlib.colors import ListedColormap
        k = max(int(z.max()), int(y.max())) + 1
        ax.contourf(g1, g2, z, levels=np.arange(k + 1) - 0.5,
                    cmap=ListedColormap([c + "33" for c in _CLASS_COLORS[:k]]))
        if z.min() != z.max():
            ax.contour(g1, g2, z, levels=np.arange(k) + 0.5, colors="black", linewidths=1.2)
        for c in range(k):
            ax.scatter(X[y == c, 0], X[y == c, 1], s=70, color=_CLASS_COLORS[c],
                       edgecolors="black", zorder=3, label=str(c))
        ax.set_title(p.get("title", ""), fontsize=9)
        ax.set_xlabel(labels[0], fontsize=8)
        ax.set_ylabel(labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_aspect("equal")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.82 if title else 0.9,
                        wspace=0.35)
    return _finish(fig, path, title)


def network_diagram(sizes, layer_names=None, path=None, title=None, max_units=8):
    """A fully connected network as circles and lines: one column per layer of sizes[i] units
    (at most max_units drawn, with a "..." when there are more), each column named under it.
    layer_names defaults to input / hidden k / output."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"network_diagram: need at least two layers of >= 1 unit, got {sizes}")
    if layer_names is None:
        layer_names = (["input"] + [f"hidden {k}" for k in range(1, len(sizes) - 1)]
                       + ["output"])
    if len(layer_names) != len(sizes):
        raise ValueError(f"network_diagram: {len(layer_names)} names for {len(sizes)} layers")
    fig = _figure(1.9 * len(sizes) + 0.6, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    shown = [min(s, max_units) for s in sizes]
    top = max(shown)
    pos = []
    for li, n in enumerate(shown):
        ys = (np.arange(n) - (n - 1) / 2) * (top / max(top, 1))
        pos.append([(li, y) for y in ys])
    for a, b in zip(pos[:-1], pos[1:]):
        for (x0, y0) in a:
            for (x1, y1) in b:
                ax.plot([x0, x1], [y0, y1], color="#999999", lw=0.6, zorder=1)
    colors = ["#9ecae1"] + ["#fdae6b"] * (len(sizes) - 2) + ["#a1d99b"]
    for li, layer in enumerate(pos):
        for (x, y) in layer:
            ax.scatter([x], [y], s=320, color=colors[li], edgecolors="black", zorder=2)
        if sizes[li] > shown[li]:
            ax.text(li, layer[-1][1] + 0.7, "\u22ee", ha="center", va="center", fontsize=12)
        ax.text(li, -top / 2 - 0.9, f"{layer_names[li]}\n({sizes[li]})", ha="center",
                va="top", fontsize=9)
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.set_ylim(-top / 2 - 2.0, top / 2 + 1.0)
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88 if title else 0.98)
    return _finish(fig, path, title)


def attention_heatmaps(weights, tokens, titles=None, path=None, title=None, ncols=None,
                       cmap="Blues"):
    """Attention weights (H, T, T) (or one (T, T) map) as heatmaps: row i is the query at
    position i, column j how much it attends to position j. tokens: T labels (characters are
    shown with spaces and newlines made visible)."""
    w = _array(weights)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"attention_heatmaps: expected weights (H, T, T), got {w.shape}")
    tokens = [_visible(t) for t in tokens]
    if len(tokens) != w.shape[1]:
        raise ValueError(f"attention_heatmaps: {len(tokens)} tokens for maps of size "
                         f"{w.shape[1]}")
    h, t = w.shape[:2]
    cols = int(ncols or min(h, 4))
    rows = int(np.ceil(h / cols))
    side = max(2.4, 0.11 * t + 0.9)
    fig = _figure(side * cols, side * rows + (0.4 if title else 0.1))
    for i in range(h):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(w[i], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        fs = 7 if t <= 24 else 6 if t <= 40 else 5
        ax.set_xticklabels(tokens, fontsize=fs, family="monospace")
        ax.set_yticklabels(tokens, fontsize=fs, family="monospace")
        ax.tick_params(length=0, pad=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.04, top=0.9 if title else 0.95,
                        wspace=0.25, hspace=0.3)
    return _finish(fig, path, title)


def _visible(tok):
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}.get(str(tok), str(tok))


def temperature_bars(probs, temperatures, labels, top=10, path=None, title=None,
                     ylabel="probability", panel_title="T = {t:g}"):
    """The next-token distribution at each temperature as bar charts, side by side: probs
    (K, V), one row per temperature; labels: V token names. The same top tokens (the most
    likely at the first temperature) are shown in every panel."""
    p = _array(probs)
    temperatures = list(temperatures)
    if p.ndim != 2 or p.shape[0] != len(temperatures) or p.shape[1] != len(labels):
        raise ValueError(f"temperature_bars: expected probs ({len(temperatures)}, "
                         f"{len(labels)}), got {p.shape}")
    order = np.argsort(-p[0], kind="stable")[:int(top)]
    names = [_visible(labels[j]) for j in order]
    fig = _figure(2.4 * len(temperatures) + 0.4, 2.8 + (0.3 if title else 0))
    for i, t in enumerate(temperatures):
        ax = fig.add_subplot(1, len(temperatures), i + 1)
        ax.bar(range(len(order)), p[i, order], color="#3182bd")
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(names, fontsize=8, family="monospace")
        ax.set_ylim(0, 1)
        ax.set_title(panel_title.format(t=t), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.set_ylabel(ylabel, fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.12, top=0.8 if title else 0.88,
                        wspace=0.3)
    return _finish(fig, path, title)


def loss_surface(w1, w2, loss, trajectory=None, path=None, title=None, labels=("w1", "w2"),
                 levels=25, trajectory_label="descent"):
    """A loss over two parameters as filled contours (w1, w2: 1-D grids; loss: (len(w2),
    len(w1))), with a descent path (K, 2) drawn on it from its start (circle) to its end (star);
    several paths as a dict {label: (K, 2)}."""
    a, b, z = _array(w1), _array(w2), _array(loss)
    if a.ndim != 1 or b.ndim != 1 or z.shape != (len(b), len(a)):
        raise ValueError(f"loss_surface: expected 1-D grids and loss (len(w2), len(w1)) = "
                         f"({len(b)}, {len(a)}), got {z.shape}")
    fig = _figure(5.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    cs = ax.contourf(a, b, z, levels=levels, cmap="viridis")
    ax.contour(a, b, z, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
    fig.colorbar(cs, ax=ax, shrink=0.85)
    if trajectory is not None:
        paths = trajectory if isinstance(trajectory, dict) else {trajectory_label: trajectory}
        for k, (label, tr) in enumerate(paths.items()):
            tr = _array(tr)
            if tr.ndim != 2 or tr.shape[1] != 2:
                raise ValueError(f"loss_surface: trajectory must be (K, 2), got {tr.shape}")
            color = _PATH_COLORS[k % len(_PATH_COLORS)]
            ax.plot(tr[:, 0], tr[:, 1], ".-", color=color, lw=1.5, ms=3, label=str(label))
            ax.plot(*tr[0], "o", color="white", mec="black", ms=7)
            ax.plot(*tr[-1], "*", color=color, mec="black", ms=13)
        ax.set_xlim(a[0], a[-1])
        ax.set_ylim(b[0], b[-1])
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.9 if title else 0.96)
    return _finish(fig, path, title)


def line_chart(series, xlabel="", ylabel="", path=None, title=None, logx=False, logy=False,
               markers=True, hline=None, hline_label=None, width=6.0, height=3.6):
    """Curves on one pair of axes: series {label: (x, y)}; hline draws a dashed reference."""
    if not series:
        raise ValueError("line_chart: no series")
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    for label, (x, y) in series.items():
        x, y = _array(x), _array(y)
        if x.shape != y.shape:
            raise ValueError(f"line_chart: series {label!r} has x {x.shape} and y {y.shape}")
        ax.plot(x, y, "-o" if markers else "-", ms=3, lw=1.4, label=str(label))
    if hline is not None:
        ax.axhline(hline, color="gray", ls="--", lw=1, label=hline_label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.88 if title else 0.95)
    return _finish(fig, path, title)


def bar_chart(values, ylabel="", path=None, title=None, logy=False, fmt="{:.3g}",
              colors=None, width=None):
    """One bar per entry of values {label: number}, each annotated with fmt."""
    if not values:
        raise ValueError("bar_chart: no values")
    names, v = list(values), _array(list(values.values()))
    fig = _figure(width or max(4.0, 1.0 * len(names) + 1.5), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(names)), v, color=colors or "#3182bd")
    for i, y in enumerate(v):
        ax.annotate(fmt.format(y), (i, y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_ylim(top=(v.max() * (3 if logy else 1.15)) if v.max() > 0 else 1)
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.14, top=0.88 if title else 0.95)
    return _finish(fig, path, title)


def roofline(peak_gflops, bandwidth_gbs, points, path=None, title=None,
             xlabel="arithmetic intensity (FLOP/byte)", ylabel="GFLOP/s",
             roof_label="roof: min(peak, bandwidth x intensity)"):
    """The roofline model: attainable GFLOP/s = min(peak, bandwidth * intensity), on log-log
    axes, with each measured kernel placed at (intensity, achieved GFLOP/s).

    points: a list of (name, intensity FLOP/byte, achieved GFLOP/s)."""
    if not peak_gflops > 0 or not bandwidth_gbs > 0:
        raise ValueError(f"roofline: peak {peak_gflops} GFLOP/s and bandwidth {bandwidth_gbs} "
                         f"GB/s must be > 0")
    pts = [(str(n), float(i), float(g)) for n, i, g in points]
    if any(not (i > 0 and g > 0) for _, i, g in pts):
        raise ValueError("roofline: every point needs intensity > 0 and GFLOP/s > 0")
    ridge = peak_gflops / bandwidth_gbs
    lo = min([ridge / 8] + [i / 2 for _, i, _ in pts])
    hi = max([ridge * 8] + [i * 2 for _, i, _ in pts])
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, np.minimum(peak_gflops, bandwidth_gbs * x), color="black", lw=2,
            label=roof_label)
    ax.axvline(ridge, color="gray", ls=":", lw=1)
    ax.annotate(f"{peak_gflops:.0f} GFLOP/s", (hi, peak_gflops), ha="right", va="bottom",
                fontsize=8)
    mid = np.sqrt(lo * ridge)                     # halfway up the sloped roof, on a log scale
    ax.annotate(f"{bandwidth_gbs:.1f} GB/s", (mid, bandwidth_gbs * mid), xytext=(-6, 6),
                textcoords="offset points", ha="right", va="bottom", fontsize=8)
    for k, (name, inten, g) in enumerate(pts):
        ax.scatter([inten], [g], s=45, zorder=3, color=_CLASS_COLORS[k % len(_CLASS_COLORS)]
                   if k < len(_CLASS_COLORS) else None, edgecolors="black")
        ax.annotate(name, (inten, g), xytext=(4, -10 if k % 2 else 4),
                    textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9 if title else 0.96)
    return _finish(fig, path, title)


def heatmaps(matrices, titles=None, path=None, title=None, cmap="magma", ncols=None,
             symmetric=False):
    """Matrices (K, R, C) (or one (R, C)) side by side, each on its own colour scale with a
    colour bar; symmetric=True centres each scale on 0 (for signed values)."""
    m = _array(matrices)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"heatmaps: expected matrices (K, R, C), got {m.shape}")
    k = len(m)
    cols = int(ncols or k)
    rows = int(np.ceil(k / cols))
    fig = _figure(3.1 * cols, 2.9 * rows + (0.4 if title else 0.1))
    for i in range(k):
        ax = fig.add_subplot(rows, cols, i + 1)
        lim = np.abs(m[i]).max() or 1.0
        im = ax.imshow(m[i], cmap=cmap, interpolation="nearest",
                       vmin=-lim if symmetric else None, vmax=lim if symmetric else None)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.tick_params(labelsize=6)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.06, top=0.85 if title else 0.92,
                        wspace=0.3, hspace=0.35)
    return _finish(fig, path, title)
