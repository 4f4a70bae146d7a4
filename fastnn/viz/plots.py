"""The figures behind fastnn.viz: see the package docstring. Drawn on matplotlib's Agg canvas
(matplotlib.figure.Figure, never pyplot), so the caller's backend and windows are left alone."""
import os

import numpy as np

from ..errors import require

__all__ = ["image_grid", "filter_grid", "feature_map_grid", "layer_summary", "probe_bars",
           "save_figure", "to_hwc"]


def _figure(width, height):
    require("matplotlib", "fastnn.viz (the lesson's figures)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=110):
    """Write fig to path (a .png unless the extension says otherwise); folders are created.
    Returns path."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


def _array(x):
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        x = x.detach().numpy()
    elif hasattr(x, "_data") and not isinstance(x, np.ndarray):
        x = x._data
    return np.asarray(x, dtype=np.float64)


def to_hwc(img):
    """One image as matplotlib wants it: (H, W) or (H, W, 3), values clipped to [0, 1].
    Accepts (C, H, W) with C = 1 or 3, (H, W, C), or (H, W)."""
    a = _array(img)
    if a.ndim == 3 and a.shape[0] in (1, 3):   # fastnn's layout first: (C, H, W)
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        raise ValueError(f"to_hwc: expected an image (C,H,W), (H,W,C) or (H,W), got shape "
                         f"{a.shape}")
    return np.clip(a, 0.0, 1.0)


def _show(ax, img, cmap="gray", title=None, fontsize=7):
    hwc = to_hwc(img)
    ax.imshow(hwc, cmap=cmap if hwc.ndim == 2 else None, interpolation="nearest", vmin=0,
              vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize, pad=2)


def _grid_shape(n, ncols):
    ncols = int(ncols or max(1, int(np.ceil(np.sqrt(n)))))
    return max(1, int(np.ceil(n / ncols))), ncols


def _finish(fig, path, title, top=0.9):
    if title:
        import textwrap
        fig.suptitle(textwrap.fill(title, max(30, int(fig.get_figwidth() * 11))), fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def image_grid(images, titles=None, ncols=None, path=None, title=None, tile=1.1):
    """A grid of images (N, C, H, W), (N, H, W, C) or (N, H, W) in [0, 1], each with an optional
    title. Returns the Figure (and writes it to path if given)."""
    images = list(images)
    if not images:
        raise ValueError("image_grid: no images")
    rows, cols = _grid_shape(len(images), ncols)
    fig = _figure(cols * tile, rows * tile + (0.4 if title else 0.1))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        if i < len(images):
            _show(ax, images[i], title=titles[i] if titles is not None else None, fontsize=6)
        else:
            ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9 if title else 0.96,
                        wspace=0.08, hspace=0.3 if titles is not None else 0.08)
    return _finish(fig, path, title)


def filter_tiles(weight):
    """Conv filters (O, I, kH, kW) as O images in [0, 1]: RGB when I == 3, else the mean over
    the input channels in grey; each filter scaled on its own so that 0 is mid-grey."""
    w = _array(weight)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: expected conv weights (O, I, kH, kW), got shape "
                         f"{w.shape}")
    if w.shape[1] != 3:
        w = w.mean(axis=1, keepdims=True)
    scale = np.abs(w).reshape(len(w), -1).max(axis=1)
    scale[scale == 0] = 1.0
    return 0.5 + 0.5 * w / scale[:, None, None, None]


def filter_grid(weight, path=None, title=None, ncols=None):
    """The first layer's filters (O, I, kH, kW), one tile each (see filter_tiles)."""
    tiles = filter_tiles(weight)
    rows, cols = _grid_shape(len(tiles), ncols)
    fig = _figure(max(cols * 0.75, 4.0), rows * 0.75 + (0.6 if title else 0.1))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        if i < len(tiles):
            _show(ax, tiles[i])
        else:
            ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01,
                        top=1 - (0.6 if title else 0.05) / fig.get_figheight(),
                        wspace=0.1, hspace=0.1)
    return _finish(fig, path, title)


def _normalized(m):
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def feature_map_grid(maps, images=None, max_channels=16, path=None, title=None,
                     row_titles=None, cmap="viridis"):
    """One row per input image: the image (if given), then its first max_channels feature maps
    (maps: (N, C, H, W)), each scaled to its own range."""
    m = _array(maps)
    if m.ndim != 4:
        raise ValueError(f"feature_map_grid: expected maps (N, C, H, W), got shape {m.shape}")
    n, c = m.shape[:2]
    k = min(c, int(max_channels))
    extra = 1 if images is not None else 0
    cols = k + extra
    fig = _figure(cols * 0.7 + 0.2, n * 0.75 + (0.45 if title else 0.15))
    for r in range(n):
        if images is not None:
            ax = fig.add_subplot(n, cols, r * cols + 1)
            _show(ax, images[r], title=(row_titles[r] if row_titles else
                                        ("input" if r == 0 else None)), fontsize=6)
        for j in range(k):
            ax = fig.add_subplot(n, cols, r * cols + extra + j + 1)
            _show(ax, _normalized(m[r, j]), cmap=cmap,
                  title=f"ch {j}" if r == 0 else None, fontsize=6)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88 if title else 0.94,
                        wspace=0.06, hspace=0.12)
    return _finish(fig, path, title)


def layer_summary(columns, path=None, title=None, caption=None, tile=0.62):
    """The layers side by side, left to right. columns: a list, one per layer, of dicts with
    "title", optional "subtitle" (a line under it, e.g. probe accuracies), "rows" (a list of
    rows, each a list of images) and optional "row_labels" (one per row) and "col_labels".
    Returns the Figure."""
    if not columns:
        raise ValueError("layer_summary: no columns")
    from matplotlib.gridspec import GridSpec

    import textwrap

    widths = [max(len(r) for r in col["rows"]) for col in columns]
    nrows = max(len(col["rows"]) for col in columns)
    gap = 0.55
    total_w = max(sum(widths) * tile + gap * (len(columns) - 1) + 0.4, 6.0)
    sub_lines = max((col.get("subtitle") or "").count("\n") + 1 if col.get("subtitle") else 0
                    for col in columns)
    title_h = 0.4 if title else 0.05
    head = title_h + 0.28 + 0.17 * sub_lines + 0.22
    if caption:
        caption = textwrap.fill(caption, max(40, int(total_w * 13)))
    foot = 0.1 + (0.17 * (caption.count("\n") + 1) + 0.1 if caption else 0)
    height = nrows * tile * 1.08 + head + foot
    fig = _figure(total_w, height)
    side = 0.2 / total_w
    outer = GridSpec(1, len(columns), figure=fig, width_ratios=widths,
                     wspace=gap / tile / max(np.mean(widths), 1), left=side, right=1 - side,
                     bottom=foot / height, top=1 - head / height)
    for ci, (col, w) in enumerate(zip(columns, widths)):
        inner = outer[0, ci].subgridspec(nrows, w, wspace=0.05, hspace=0.08)
        for r, row in enumerate(col["rows"]):
            for j in range(w):
                ax = fig.add_subplot(inner[r, j])
                if j < len(row) and row[j] is not None:
                    label = None
                    if r == 0 and col.get("col_labels"):
                        label = col["col_labels"][j] if j < len(col["col_labels"]) else None
                    _show(ax, row[j], title=label, fontsize=6)
                    if j == 0 and col.get("row_labels"):
                        ax.set_ylabel(col["row_labels"][r], fontsize=6, labelpad=1)
                else:
                    ax.axis("off")
        # the column's heading, centred over its block
        box = outer[0, ci].get_position(fig)
        x = (box.x0 + box.x1) / 2
        y = 1 - title_h / height
        fig.text(x, y, col["title"], ha="center", va="top", fontsize=9, fontweight="bold")
        if col.get("subtitle"):
            fig.text(x, y - 0.26 / height, col["subtitle"], ha="center", va="top", fontsize=7,
                     linespacing=1.3)
        if ci < len(columns) - 1:
            nxt = outer[0, ci + 1].get_position(fig)
            fig.text((box.x1 + nxt.x0) / 2, (box.y0 + box.y1) / 2, "\u2192", ha="center",
                     va="center", fontsize=16, color="#555555")
    if caption:
        fig.text(0.5, 0.08 / height, caption, ha="center", va="bottom", fontsize=7.5,
                 style="italic", linespacing=1.3)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    if path is not None:
        save_figure(fig, path)
    return fig


_PROBE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def probe_bars(table, path=None, title=None, ylabel="held-out accuracy of a linear probe",
               control_label="same network, random weights"):
    """Linear-probe accuracies as grouped bars: one group per layer, one bar per target, the
    chance level of each target as a dashed line in its colour.

    table: {"layers": [names], "targets": [names], "accuracy": {target: [one per layer]},
    "chance": {target: accuracy of always guessing the commonest value}} (what
    fastnn.models.probes.run_probes returns); an optional "control" table of the same layers
    and targets (the network with random weights) is drawn as black ticks on the bars."""
    layers, targets = list(table["layers"]), list(table["targets"])
    if not layers or not targets:
        raise ValueError("probe_bars: the table has no layers or no targets")
    fig = _figure(max(6.0, 1.1 * len(layers) * max(1, len(targets)) / 3 + 2), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(targets)
    for j, t in enumerate(targets):
        color = _PROBE_COLORS[j % len(_PROBE_COLORS)]
        xs = np.arange(len(layers)) + (j - (len(targets) - 1) / 2) * width
        acc = np.asarray(table["accuracy"][t], float)
        ax.bar(xs, acc, width, label=t, color=color)
        for x, y in zip(xs, acc):
            ax.annotate(f"{y:.2f}", (x, y), ha="center", va="bottom", fontsize=6)
        control = table.get("control")
        if control and t in control.get("accuracy", {}):
            ax.scatter(xs, control["accuracy"][t], marker="_", s=90, color="black", zorder=3,
                       linewidths=1.5, label=control_label if j == 0 else None)
        chance = table.get("chance", {}).get(t)
        if chance is not None:
            ax.hlines(chance, -0.5, len(layers) - 0.5, colors=color, linestyles="dashed",
                      linewidth=0.8)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=min(len(targets), 5), loc="upper left", frameon=False)
    ax.set_title(title or "what a linear classifier reads from each layer (dashed: chance)",
                 fontsize=9)
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.1, top=0.9)
    return _finish(fig, path, None)
