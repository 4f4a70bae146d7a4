"""fastnn.viz: every figure is drawn on the Agg canvas, written as a readable PNG of a sensible
size, and bad input is a clear ValueError."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fastnn import viz  # noqa: E402
from fastnn.tensor import Tensor  # noqa: E402


def _read_png(path):
    import matplotlib.image as mpimg
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.01            # something was drawn
    return img


def test_image_grid(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.random((7, 3, 32, 32)).astype(np.float32)
    fig = viz.image_grid(imgs, titles=[f"#{i}" for i in range(7)], ncols=4,
                         path=tmp_path / "sub" / "grid.png", title="seven")
    assert len([a for a in fig.axes if a.images]) == 7
    _read_png(tmp_path / "sub" / "grid.png")
    viz.image_grid(Tensor(imgs[:2]))                      # Tensors, no path: no file
    viz.image_grid(rng.random((3, 8, 8)))                 # grey images (N, H, W)
    viz.image_grid(rng.random((2, 8, 8, 3)))              # (N, H, W, C)
    with pytest.raises(ValueError, match="no images"):
        viz.image_grid([])


def test_to_hwc():
    assert viz.to_hwc(np.zeros((3, 5, 6))).shape == (5, 6, 3)
    assert viz.to_hwc(np.zeros((1, 5, 6))).shape == (5, 6)
    assert viz.to_hwc(np.full((5, 6), 2.0)).max() == 1.0
    with pytest.raises(ValueError, match="expected an image"):
        viz.to_hwc(np.zeros((4, 5, 6, 7)))


def test_filter_grid(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(16, 3, 3, 3))
    fig = viz.filter_grid(w, path=tmp_path / "f.png", title="filters")
    assert len([a for a in fig.axes if a.images]) == 16
    _read_png(tmp_path / "f.png")
    tiles = viz.plots.filter_tiles(w)
    assert tiles.min() >= 0 and tiles.max() <= 1 and tiles.shape == (16, 3, 3, 3)
    # zero is mid-grey, and each filter uses its full range
    assert np.allclose(viz.plots.filter_tiles(np.zeros((1, 3, 3, 3))), 0.5)
    assert np.allclose(np.abs(tiles - 0.5).reshape(16, -1).max(1), 0.5)
    assert viz.plots.filter_tiles(rng.normal(size=(4, 8, 3, 3))).shape == (4, 1, 3, 3)
    with pytest.raises(ValueError, match="conv weights"):
        viz.filter_grid(np.zeros((3, 3)))


def test_feature_map_grid(tmp_path):
    rng = np.random.default_rng(2)
    maps = rng.random((3, 20, 16, 16))
    fig = viz.feature_map_grid(maps, images=rng.random((3, 3, 32, 32)), max_channels=8,
                               path=tmp_path / "maps.png", title="stage 1")
    assert len([a for a in fig.axes if a.images]) == 3 * 9
    _read_png(tmp_path / "maps.png")
    viz.feature_map_grid(np.zeros((1, 2, 4, 4)))           # constant maps do not divide by 0
    with pytest.raises(ValueError, match="N, C, H, W"):
        viz.feature_map_grid(np.zeros((2, 4, 4)))


def test_layer_summary(tmp_path):
    rng = np.random.default_rng(3)
    cols = [{"title": f"stage {k}", "subtitle": "class 0.5", "rows":
             [[rng.random((3, 32, 32)) for _ in range(3)] for _ in range(4)],
             "row_labels": [f"ch {i}" for i in range(4)], "col_labels": ["max", "top 1", "top 2"]}
            for k in range(3)]
    cols[0]["rows"][0][2] = None                             # a gap is allowed
    fig = viz.layer_summary(cols, path=tmp_path / "summary.png", title="layers",
                            caption="edges -> shapes -> objects")
    assert len([a for a in fig.axes if a.images]) == 3 * 4 * 3 - 1
    texts = [t.get_text() for t in fig.texts]
    assert "stage 0" in texts and "stage 2" in texts and "\u2192" in texts
    img = _read_png(tmp_path / "summary.png")
    assert img.shape[1] > img.shape[0]                       # left to right
    with pytest.raises(ValueError):
        viz.layer_summary([])


def test_probe_bars(tmp_path):
    table = {"layers": ["pixels", "stage1", "stage2"], "targets": ["class", "circle"],
             "accuracy": {"class": [0.3, 0.6, 0.9], "circle": [0.6, 0.7, 0.8]},
             "chance": {"class": 1 / 6, "circle": 0.55}}
    fig = viz.probe_bars(table, path=tmp_path / "probes.png")
    assert len(fig.axes[0].patches) == 6
    table["control"] = {"accuracy": {"class": [0.3, 0.4, 0.4], "circle": [0.6, 0.6, 0.6]}}
    fig = viz.probe_bars(table)
    assert len(fig.axes[0].collections) >= 2     # the control's ticks
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == table["layers"]
    _read_png(tmp_path / "probes.png")
    with pytest.raises(ValueError):
        viz.probe_bars({"layers": [], "targets": ["a"], "accuracy": {}})


def test_no_pyplot_state(tmp_path):
    """Library figures never go through pyplot (no open windows, no global figure list)."""
    import sys
    viz.image_grid(np.zeros((1, 3, 4, 4)))
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt
        assert plt.get_fignums() == []


# ---------------------------------------------------------------- the lessons' figures
def test_decision_boundaries(tmp_path):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 1])
    calls = []

    def predict(g):
        calls.append(g.shape)
        return (g.sum(axis=1) > 0.5).astype(int)

    fig = viz.decision_boundaries([{"title": "OR", "predict": predict, "X": X, "y": y},
                                   {"title": "scores", "predict": lambda g: g[:, 0], "X": X,
                                    "y": y}], path=tmp_path / "b.png", resolution=50)
    assert calls == [(2500, 2)]
    assert [a.get_title() for a in fig.axes] == ["OR", "scores"]
    assert len(fig.axes[0].collections) >= 3          # regions, boundary line, points
    _read_png(tmp_path / "b.png")
    with pytest.raises(ValueError, match="no panels"):
        viz.decision_boundaries([])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.decision_boundaries([{"predict": predict, "X": np.zeros((4, 3)), "y": y}])
    with pytest.raises(ValueError, match="returned"):
        viz.decision_boundaries([{"predict": lambda g: g[:3, 0], "X": X, "y": y}])


def test_network_diagram(tmp_path):
    fig = viz.network_diagram([2, 4, 1], ["entrada", "oculta", "salida"],
                              path=tmp_path / "net.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "entrada\n(2)" in texts and "salida\n(1)" in texts
    assert len(ax.lines) == 2 * 4 + 4 * 1                 # every connection drawn
    _read_png(tmp_path / "net.png")
    big = viz.network_diagram([64, 128, 10])              # capped at max_units per column
    assert len(big.axes[0].lines) == 8 * 8 + 8 * 8
    assert "\u22ee" in [t.get_text() for t in big.axes[0].texts]
    assert "hidden 1\n(128)" in [t.get_text() for t in big.axes[0].texts]
    with pytest.raises(ValueError, match="names"):
        viz.network_diagram([2, 2], ["a"])
    with pytest.raises(ValueError, match="two layers"):
        viz.network_diagram([3])


def test_attention_heatmaps(tmp_path):
    rng = np.random.default_rng(4)
    w = np.tril(rng.random((2, 5, 5)))
    w /= w.sum(-1, keepdims=True)
    fig = viz.attention_heatmaps(w, list("ab c\n"), titles=["h0", "h1"],
                                 path=tmp_path / "att.png")
    assert [a.get_title() for a in fig.axes] == ["h0", "h1"]
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["a", "b", "\u2423", "c", "\u21b5"]     # space and newline made visible
    assert np.allclose(fig.axes[1].images[0].get_array(), w[1])
    _read_png(tmp_path / "att.png")
    viz.attention_heatmaps(w[0], "abcde")                    # one map
    with pytest.raises(ValueError, match="tokens"):
        viz.attention_heatmaps(w, "abc")
    with pytest.raises(ValueError, match="H, T, T"):
        viz.attention_heatmaps(np.zeros((2, 3, 4)), "abc")


def test_temperature_bars(tmp_path):
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    temps = [0.5, 1.0, 2.0]
    probs = np.stack([np.exp(logits / t) / np.exp(logits / t).sum() for t in temps])
    fig = viz.temperature_bars(probs, temps, ["a", " ", "c", "d"], top=3,
                               path=tmp_path / "t.png")
    assert len(fig.axes) == 3 and all(len(a.patches) == 3 for a in fig.axes)
    heights = [[p.get_height() for p in a.patches] for a in fig.axes]
    assert heights[0][0] > heights[1][0] > heights[2][0]      # hotter is flatter
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "\u2423", "c"]
    _read_png(tmp_path / "t.png")
    with pytest.raises(ValueError, match="expected probs"):
        viz.temperature_bars(probs, [1.0], ["a", "b", "c", "d"])


def test_loss_surface(tmp_path):
    w1, w2 = np.linspace(-2, 2, 30), np.linspace(-1, 1, 20)
    z = w1[None, :] ** 2 + 3 * w2[:, None] ** 2
    path = np.array([[1.5, 0.8], [0.8, 0.2], [0.1, 0.0]])
    fig = viz.loss_surface(w1, w2, z, trajectory=path, path=tmp_path / "s.png",
                           labels=("peso", "sesgo"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "peso"
    assert np.allclose(ax.lines[0].get_xydata(), path)
    _read_png(tmp_path / "s.png")
    fig = viz.loss_surface(w1, w2, z, trajectory={"a": path, "b": path[::-1]})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    with pytest.raises(ValueError, match="len"):
        viz.loss_surface(w1, w2, z.T)
    with pytest.raises(ValueError, match="trajectory"):
        viz.loss_surface(w1, w2, z, trajectory=np.zeros(3))


def test_line_and_bar_charts(tmp_path):
    fig = viz.line_chart({"lr 0.1": ([1, 2, 3], [3, 2, 1]), "lr 1": ([1, 2, 3], [3, 3, 3])},
                         xlabel="época", ylabel="pérdida", logy=True, hline=1.0,
                         path=tmp_path / "l.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    _read_png(tmp_path / "l.png")
    with pytest.raises(ValueError, match="has x"):
        viz.line_chart({"a": ([1, 2], [1])})
    fig = viz.bar_chart({"numpy": 1.0, "numba": 12.5}, ylabel="x", logy=True,
                        path=tmp_path / "b.png")
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 12.5]
    assert "12.5" in [t.get_text() for t in fig.axes[0].texts]
    _read_png(tmp_path / "b.png")
    with pytest.raises(ValueError):
        viz.bar_chart({})


def test_roofline(tmp_path):
    fig = viz.roofline(100.0, 10.0, [("matmul", 50.0, 80.0), ("add", 0.08, 0.7)],
                       path=tmp_path / "r.png")
    ax = fig.axes[0]
    roof = ax.lines[0].get_xydata()
    # the roof is min(peak, bandwidth * intensity): bandwidth-bound left of the ridge (10)
    assert np.allclose(roof[:, 1], np.minimum(100.0, 10.0 * roof[:, 0]))
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert {"matmul", "add"} <= {t.get_text() for t in ax.texts}
    _read_png(tmp_path / "r.png")
    with pytest.raises(ValueError, match="> 0"):
        viz.roofline(0, 10, [])
    with pytest.raises(ValueError, match="every point"):
        viz.roofline(100, 10, [("x", 0.0, 1.0)])


def test_heatmaps(tmp_path):
    rng = np.random.default_rng(5)
    mats = rng.normal(size=(2, 6, 6))
    fig = viz.heatmaps(mats, titles=["a", "b"], symmetric=True, path=tmp_path / "h.png")
    images = [a.images[0] for a in fig.axes if a.images]
    assert len(images) == 2 and np.allclose(images[1].get_array(), mats[1])
    lo, hi = images[0].get_clim()
    assert lo == -hi == -np.abs(mats[0]).max()              # centred on zero
    _read_png(tmp_path / "h.png")
    viz.heatmaps(np.eye(3))                                 # one matrix
    with pytest.raises(ValueError, match="K, R, C"):
        viz.heatmaps(np.zeros(3))
