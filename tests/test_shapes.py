"""The "shapes to objects" data set: determinism, balance, ranges, speed, attributes, names."""
import time

import numpy as np
import pytest

from fastnn.data import ShapesDataset, make_shapes
from fastnn.data import shapes as S
from fastnn.tensor import Tensor


@pytest.fixture(scope="module")
def batch():
    return make_shapes(600, seed=3)


def test_deterministic_by_seed():
    a = make_shapes(50, seed=7)
    b = make_shapes(50, seed=7)
    c = make_shapes(50, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for k in a[2]:
        assert np.array_equal(a[2][k], b[2][k]), k
    assert not np.array_equal(a[0], c[0])
    # threads change the speed, never the images
    one, _, _ = make_shapes(300, seed=7, workers=1)
    two, _, _ = make_shapes(300, seed=7, workers=2)
    assert np.array_equal(one, two)


def test_shapes_dtypes_ranges_and_balance(batch):
    images, labels, attrs = batch
    assert images.shape == (600, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int64
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.isfinite(images).all()
    assert np.array_equal(np.bincount(labels, minlength=6), [100] * 6)
    assert images.std() > 0.1       # not blank
    for key in ("contains_circle", "edge_orientation", "background", "color"):
        assert len(attrs[key]) == 600
    assert attrs["contains_circle"].dtype == bool
    # every value of every probed attribute occurs, none dominates
    for key, k in (("edge_orientation", 4), ("background", 4), ("color", 8)):
        counts = np.bincount(attrs[key], minlength=k)
        assert len(counts) == k and counts.min() > 0.05 * 600, (key, counts)
    assert 0.3 < attrs["contains_circle"].mean() < 0.85
    # contains_circle is not fixed by the class for the classes with variants
    for c in (S.CLASSES.index("house"), S.CLASSES.index("tree"), S.CLASSES.index("fish")):
        share = attrs["contains_circle"][labels == c].mean()
        assert 0.05 < share < 0.95, (S.CLASSES[c], share)


def test_speed_sanity():
    make_shapes(64, seed=0)
    t = time.perf_counter()
    make_shapes(3000, seed=0)
    dt = time.perf_counter() - t
    assert dt < 6.0, f"3000 images took {dt:.2f} s"   # ~0.4 s on one quiet core


def test_edge_orientation_hand_checked():
    n, h = 4, 32
    img = np.zeros((n, 3, h, h), np.float32)
    y, x = np.mgrid[0:h, 0:h]
    img[0, :, y[:, 0] >= 16, :] = 1.0                 # top dark, bottom light: a horizontal edge
    img[1] = (x + y >= 32)[None]                      # the line x + y = 32: "/" on screen
    img[2, :, :, 16:] = 1.0                           # a vertical edge
    img[3] = (x - y >= 0)[None]                       # x = y: "\" on screen (y grows down)
    assert S.edge_orientation(img).tolist() == [0, 1, 2, 3]


def test_contains_circle_hand_checked():
    # faces and cars always show a circle (head, wheels); no distractors, fixed classes
    images, labels, attrs = make_shapes(12, seed=1, classes=["face", "car"] * 6,
                                        distractors=False)
    assert attrs["contains_circle"].all()
    # a fish has no circle of its own: only a circle distractor gives it one
    _, _, attrs = make_shapes(30, seed=2, classes="pez")
    assert np.array_equal(attrs["contains_circle"], attrs["distractor"] == 1)


def test_background_attribute_matches_pixels():
    images, _, attrs = make_shapes(40, seed=4, classes="fish", backgrounds="plain",
                                   distractors=False)
    assert (attrs["background"] == 0).all()
    corner = images[:, :, :3, :3].reshape(40, 3, -1)
    assert corner.std(axis=2).max() < 1e-5            # a plain background is one colour
    images, _, _ = make_shapes(40, seed=4, classes="fish", backgrounds="stripes",
                               distractors=False)
    assert images[:, :, :8, :8].reshape(40, -1).std(axis=1).min() > 0.02


def test_controlled_colors_english_and_spanish():
    red, _, a1 = make_shapes(20, seed=5, classes="face", colors="red", backgrounds="plain",
                             distractors=False)
    rojo, _, a2 = make_shapes(20, seed=5, classes="cara", colors="rojo", backgrounds="liso",
                              distractors=False)
    assert np.array_equal(red, rojo) and (a1["color"] == S.COLORS.index("red")).all()
    # the face's centre pixel is red-dominant
    mid = red[:, :, 16, 16]
    assert (mid[:, 0] > mid[:, 1] + 0.2).mean() > 0.8
    blue, _, _ = make_shapes(20, seed=5, classes="face", colors="azul", distractors=False)
    assert (blue[:, 2, 16, 16] > blue[:, 0, 16, 16] + 0.2).mean() > 0.8
    for en, es in zip(S.COLORS, S.COLORS_ES):
        assert S.parse_color(en) == S.parse_color(es) == S.parse_color(es.upper())
    assert S.parse_color("violeta") == S.COLORS.index("purple")
    assert S.parse_background("rayas") == S.BACKGROUNDS.index("stripes")
    assert S.parse_class("árbol") == S.parse_class("arbol") == S.CLASSES.index("tree")
    _, _, a = make_shapes(3, seed=0, colors=["verde", "amarillo", "blue"],
                          backgrounds=["puntos", "degradado", "plain"])
    assert a["color"].tolist() == [3, 2, 5] and a["background"].tolist() == [2, 3, 0]


def test_bad_names_and_lengths():
    with pytest.raises(ValueError, match="unknown colour 'chartreuse'.*rojo"):
        make_shapes(2, colors="chartreuse")
    with pytest.raises(ValueError, match="one value or 3 values"):
        make_shapes(3, backgrounds=["plain"])
    with pytest.raises(ValueError):
        ShapesDataset(4, split="holdout")


def test_dataset():
    ds = ShapesDataset(24, seed=0, split="train")
    test = ShapesDataset(24, seed=0, split="test")
    assert len(ds) == 24
    img, label = ds[3]
    assert isinstance(img, Tensor) and tuple(img.shape) == (3, 32, 32)
    assert img.dtype == np.float32 and isinstance(label, int) and 0 <= label < 6
    assert np.array_equal(np.asarray(img._data), ds.images[3])
    assert not np.array_equal(ds.images, test.images)
    assert np.array_equal(ShapesDataset(24, seed=0).images, ds.images)
    from fastnn.data import DataLoader
    x, y = next(iter(DataLoader(ds, batch_size=8)))
    assert tuple(x.shape) == (8, 3, 32, 32) and tuple(y.shape) == (8,)
    flipped = ShapesDataset(4, seed=0, transform=lambda t: t * 0.0)
    assert float(flipped[0][0].sum()) == 0.0
