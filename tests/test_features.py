"""`fastnn features` and its parts (fastnn/models/features.py, probes.py, features_cli.py) on a
tiny CNN trained a few steps on a small shapes set: the stages are found, every PNG is written
and readable, the probe table has one row per layer, activation maximization raises the target
activation, and a checkpoint without a CNN is one line and status 2."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

import fastnn  # noqa: E402
from fastnn import nn  # noqa: E402
from fastnn.data import make_shapes  # noqa: E402
from fastnn.models.features import (ConvStages, gaussian_blur, maximize_activation,  # noqa
                                    pick_channels, top_images)
from fastnn.models.features_cli import write_features  # noqa: E402
from fastnn.models.probes import format_table, pixel_features, run_probes  # noqa: E402
from fastnn.nn import functional as F  # noqa: E402
from fastnn.tensor import Tensor  # noqa: E402


def _tiny_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 6))


@pytest.fixture(scope="module")
def trained():
    fastnn.manual_seed(0)
    model = _tiny_cnn()
    X, y, _ = make_shapes(192, seed=11)
    opt = fastnn.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for step in range(12):
        i = (step * 32) % len(y)
        loss = F.cross_entropy(model(Tensor(X[i:i + 32])), fastnn.from_numpy(y[i:i + 32]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert np.isfinite(losses).all()
    return model


def test_stages_of_a_sequential(trained):
    st = ConvStages(trained)
    assert st.names == ["stage1", "stage2", "stage3"]
    assert st.in_channels == 3
    assert [type(st.modules[e]).__name__ for e in st.ends] == ["MaxPool2d"] * 3
    assert [type(st.modules[e]).__name__ for e in st.map_ends] == ["ReLU"] * 3
    X, _, _ = make_shapes(5, seed=1)
    maps = st.activations(X, maps=True)
    assert [m.shape for m in maps] == [(5, 6, 32, 32), (5, 8, 16, 16), (5, 8, 8, 8)]
    pooled = st.pooled(X)
    assert [p.shape for p in pooled] == [(5, 6), (5, 8), (5, 8)]
    outs = st.activations(X)
    assert np.allclose(pooled[2], outs[2].mean(axis=(2, 3)), atol=1e-6)
    assert trained.training     # left as it was


def test_stages_of_fastnn_cnn():
    cnn = pytest.importorskip("fastnn.models.cnn")
    model = cnn.CNN(3, 32, 6, channels=(4, 8, 8))
    st = ConvStages(model)
    assert len(st) == 3 and st.names == [n for n, _ in model.stages()]
    assert st.pooled(make_shapes(2, seed=0)[0])[2].shape == (2, 8)


def test_not_a_cnn():
    with pytest.raises(ValueError, match="no Conv2d"):
        ConvStages(nn.Sequential(nn.Linear(3, 4)))
    with pytest.raises(ValueError, match="not a stack of conv stages"):
        ConvStages(nn.Linear(3, 4))


def test_activation_maximization_increases_the_target(trained):
    st = ConvStages(trained)
    X, _, _ = make_shapes(64, seed=2)
    for stage in (0, 2):
        chans = pick_channels(st.pooled(X)[stage], 3)
        imgs, start, end = maximize_activation(st, stage, chans, steps=20, seed=1)
        assert imgs.shape == (3, 3, 32, 32) and imgs.min() >= 0 and imgs.max() <= 1
        assert (end > start).all(), (stage, start, end)
        # and the returned activations are those of the returned images
        pooled = st.pooled(imgs)[stage]
        assert np.allclose(pooled[np.arange(3), chans], end, rtol=1e-4, atol=1e-5)


def test_reinitialized_is_a_fresh_copy(trained):
    from fastnn.models.features import reinitialized
    before = {k: np.array(v._data) for k, v in trained.state_dict().items()}
    fresh = reinitialized(trained, seed=3)
    after = trained.state_dict()
    assert all(np.array_equal(before[k], np.asarray(after[k]._data)) for k in before)
    w0, w1 = np.asarray(trained[0].weight._data), np.asarray(fresh[0].weight._data)
    assert w0.shape == w1.shape and not np.allclose(w0, w1)
    assert np.allclose(np.asarray(fresh[1].running_var._data), 1.0)


def test_filter_structure():
    from fastnn.models.features import filter_structure
    flat = np.ones((1, 3, 3, 3))
    x = np.tile(np.array([-1.0, 0, 1]), (3, 1))
    edge = np.stack([x, x, x])[None]                     # a vertical edge in every channel
    noise = np.random.default_rng(0).standard_normal((4000, 3, 3, 3))
    fs = filter_structure(np.concatenate([flat, edge]))
    assert np.allclose(fs["per_filter"], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    r = filter_structure(noise)
    assert abs(r["flat"] - 1 / 9) < 0.01 and abs(r["ramp"] - 2 / 9) < 0.01
    assert np.allclose(r["per_filter"].sum(axis=1), 1)


def test_helpers():
    x = np.random.default_rng(0).random((2, 3, 9, 9)).astype(np.float32)
    b = gaussian_blur(x, 0.8)
    assert b.shape == x.shape and b.std() < x.std() and np.isclose(b.mean(), x.mean(), atol=0.02)
    assert np.array_equal(gaussian_blur(x, 0), x)
    pooled = np.array([[0, 5, 1], [0, 1, 2], [0, 9, 3.0]])
    assert pick_channels(pooled, 2).tolist() == [1, 2]           # the constant channel is left out
    # with labels: the most selective channel of each class in turn
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    acts = rng.random((150, 5))
    acts[labels == 2, 3] += 3          # channel 3 fires for class 2
    acts[labels == 0, 1] += 2          # channel 1 for class 0
    acts[labels == 0, 4] += 1          # channel 4 too, less
    got = pick_channels(acts, 3, labels).tolist()
    assert got[:2] == [3, 1] and len(set(got)) == 3
    assert top_images(pooled, [1, 2], k=2).tolist() == [[2, 0], [2, 1]]
    assert pixel_features(np.ones((2, 3, 32, 32))).shape == (2, 3 * 8 * 8)
    assert pixel_features(np.ones((2, 1, 8, 8))).shape == (2, 64)        # digits: every pixel
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    assert pixel_features(x, patch=2)[0].tolist() == [2.5, 4.5, 10.5, 12.5]


def test_probes_read_what_is_there():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    informative = np.eye(3)[y] + 0.1 * rng.standard_normal((300, 3))
    noise = rng.standard_normal((300, 3))
    table = run_probes({"noise": noise, "signal": informative}, {"label": y})
    assert table["layers"] == ["noise", "signal"] and table["n_train"] + table["n_test"] == 300
    acc = table["accuracy"]["label"]
    assert acc[1] > 0.95 and acc[0] < 0.6
    assert 0.2 < table["chance"]["label"] < 0.5
    text = format_table(table)
    assert len(text.splitlines()) == 4 and "signal" in text and "chance" in text


def test_write_features(trained, tmp_path):
    import matplotlib.image as mpimg
    out = tmp_path / "features"
    res = write_features(trained, str(out), n_images=150, n_top=60, channels=3, steps=6,
                         log=lambda *a: None)
    names = {"filters.png", "summary.png", "probes.png", "probes.json"}
    for s in ("stage1", "stage2", "stage3"):
        names |= {f"feature_maps_{s}.png", f"maximize_{s}.png", f"top_images_{s}.png"}
    assert set(os.listdir(out)) == names
    for name in names - {"probes.json"}:
        img = mpimg.imread(str(out / name))
        assert img.ndim == 3 and min(img.shape[:2]) > 50 and img[..., :3].std() > 0.01, name
    table = json.loads((out / "probes.json").read_text())
    assert table["layers"] == ["pixels", "stage1", "stage2", "stage3"]   # one row per layer
    assert set(table["targets"]) == {"object class", "contains circle", "edge orientation",
                                     "background texture", "object colour"}
    for t in table["targets"]:
        assert len(table["accuracy"][t]) == 4
        assert all(0 <= a <= 1 for a in table["accuracy"][t])
    assert res["table"]["layers"] == table["layers"]
    # the control: the same layers probed with fresh random weights; the trained model's own
    # weights are untouched by making it
    ctrl = table["control"]
    assert ctrl["layers"] == table["layers"] and ctrl["targets"] == table["targets"]
    assert ctrl["accuracy"]["object class"][0] == table["accuracy"]["object class"][0]  # pixels
    assert len(table["stderr"]["object class"]) == 4
    f = table["filters"]
    assert abs(f["flat"] + f["ramp"] + f["rest"] - 1) < 1e-9 and "random_weights" in f


def test_cli_refuses_a_checkpoint_without_a_cnn(tmp_path, capsys):
    from fastnn.cli import main
    from fastnn.models import MLP
    from fastnn.models.checkpoint import save_checkpoint
    path = str(tmp_path / "mlp.npz")
    save_checkpoint(MLP((64, 8, 10)), path)
    assert main(["features", "--checkpoint", path, "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastnn features:") and "needs a CNN" in err and "\n" not in err
    assert main(["features", "--checkpoint", str(tmp_path / "none.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["features", "--checkpoint", path, "--channels", "0"]) == 2
    assert "--channels must be >= 1" in capsys.readouterr().err
    assert main(["features"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_cli_help_and_backend(capsys):
    from fastnn.cli import main
    assert main(["features", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fastnn features") and "(default: 3000)" in out
    assert "--checkpoint" in out and "example: fastnn features" in out
    assert main(["features", "--checkpoint", "x.npz", "--backend", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_on_a_cnn_checkpoint(tmp_path, capsys):
    cnn = pytest.importorskip("fastnn.models.cnn")
    from fastnn.cli import main
    from fastnn.models import checkpoint
    fastnn.manual_seed(0)
    model = cnn.CNN(3, 32, 6, channels=(4, 8, 8))
    path = str(tmp_path / "cnn.npz")
    try:
        checkpoint.save_checkpoint(model, path)
    except TypeError:
        pytest.skip("fastnn.models.checkpoint does not write CNN checkpoints yet")
    out = tmp_path / "f"
    assert main(["features", "--checkpoint", path, "--out", str(out), "--images", "90",
                 "--top-images", "30", "--channels", "2", "--steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "object class" in text and "stage3" in text and "chance" in text
    assert (out / "summary.png").exists() and (out / "probes.json").exists()
