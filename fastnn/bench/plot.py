"""`fastnn bench --plot`: the speedups over naive numpy as a bar chart (matplotlib)."""
from ..errors import require
from .cases import IMPL_LABELS, IMPL_ORDER
from .report import row_metrics


def plot(all_measured, threads, stat, path, title):
    """Bar chart: speedup over naive numpy per case (log scale), a bar per implementation,
    one panel per thread count."""
    matplotlib = require("matplotlib", "fastnn bench --plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [[(f, c, r) for t2, f, c, r in all_measured if t2 == t and f != "overhead"]
              for t in threads]
    n_cases = max((len(p) for p in panels), default=1)
    impls = [i for i in IMPL_ORDER if i != "numpy"
             and any(i in r for _, _, _, r in all_measured)]
    fig, axes = plt.subplots(len(threads), 1, figsize=(max(8, 0.9 * n_cases + 2),
                                                       4.2 * len(threads)), squeeze=False)
    colors = {"numpy": "#999999", "numba": "#1f77b4", "cython": "#ff7f0e", "cuda": "#9467bd",
              "torch": "#d62728", "torch-here": "#e377c2", "openblas": "#2ca02c"}
    width = 0.8 / max(len(impls), 1)
    for ax, t, panel in zip(axes[:, 0], threads, panels):
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for x, (_, case, results) in enumerate(panel):
                s = row_metrics(case, results, stat).get(impl, {}).get("speedup_vs_numpy")
                if s:
                    xs.append(x + (j - (len(impls) - 1) / 2) * width)
                    ys.append(s)
            ax.bar(xs, ys, width, label=IMPL_LABELS.get(impl, impl), color=colors.get(impl))
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.2g}", (x, y), ha="center", va="bottom", fontsize=5.5)
        ax.axhline(1.0, color="black", linewidth=0.8, label="naive numpy = 1")
        ax.set_yscale("log")
        top = max([b.get_height() for b in ax.patches] + [1.0])
        ax.set_ylim(top=top * 6)  # headroom for the legend above the tallest bar
        ax.set_ylabel("speedup over naive numpy")
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels([f"{f} {c.label}" for f, c, _ in panel], rotation=35, ha="right",
                           fontsize=7)
        ax.set_title(f"{title} - {t} thread(s)", fontsize=9)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=len(impls) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
