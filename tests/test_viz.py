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
