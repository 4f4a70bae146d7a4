"""The CNN lesson (fastnn/models/cnn.py, cnn_cli.py): the model's keys and outputs against the
same network in PyTorch, its checkpoints, `fastnn train cnn` / `fastnn eval cnn` end to end on
small runs, their options, and (marked slow) the digits accuracy target."""
import importlib.util

import numpy as np
import pytest

import fastnn
from fastnn.cli import main as cli_main
from fastnn.models import CNN, load_checkpoint, save_checkpoint
from fastnn.models import cnn_cli
from fastnn.models.cnn import load_image_data, train_cnn

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="scikit-learn (the digits) is not installed")
has_shapes = importlib.util.find_spec("fastnn.data.shapes") is not None


@pytest.fixture(autouse=True)
def _keep_threads():
    """--threads sets fastnn's thread count for the process: put it back after each test."""
    n = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(n)


def _torch_cnn(in_channels, image_size, num_classes, channels, dropout=0.1):
    """The same network written with torch.nn."""
    tnn = torch.nn

    class TorchCNN(tnn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], in_channels
            for c in channels:
                layers += [tnn.Conv2d(c_in, c, 3, padding=1, bias=False), tnn.BatchNorm2d(c),
                           tnn.ReLU(), tnn.MaxPool2d(2)]
                c_in = c
            self.features = tnn.Sequential(*layers)
            side = image_size >> len(channels)
            self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Dropout(dropout),
                                             tnn.Linear(c_in * side * side, num_classes))

        def forward(self, x):
            return self.classifier(self.features(x))
    return TorchCNN()


@needs_torch
def test_cnn_matches_torch_by_state_dict():
    torch.manual_seed(0)
    tm = _torch_cnn(3, 16, 5, (4, 8, 6)).double()
    tm.train()
    tm(torch.randn(8, 3, 16, 16, dtype=torch.float64))        # non-trivial running statistics
    fm = CNN(3, 16, 5, (4, 8, 6), dropout=0.1).double()
    assert list(fm.state_dict()) == list(tm.state_dict())
    fm.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16))
    tm.eval(), fm.eval()
    with torch.no_grad():
        ty = tm(torch.tensor(x)).numpy()
    with fastnn.no_grad():
        fy = fm(fastnn.tensor(x)).numpy()
    np.testing.assert_allclose(fy, ty, rtol=1e-10, atol=1e-10)


@needs_torch
def test_cnn_trains_as_torch_float32():
    """The same weights and batches: SGD steps in training mode (batch statistics, running ones
    updated) give the same losses and weights as PyTorch's, in float32."""
    torch.manual_seed(1)
    tm = _torch_cnn(3, 16, 4, (6, 8, 8), dropout=0.0)
    fm = CNN(3, 16, 4, (6, 8, 8), dropout=0.0)
    fm.load_state_dict(tm.state_dict())
    topt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9)
    fopt = fastnn.optim.SGD(fm.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.random((16, 3, 16, 16), dtype=np.float32)
        y = rng.integers(0, 4, 16)
        tl = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        fl = fastnn.nn.functional.cross_entropy(fm(fastnn.tensor(x)), fastnn.tensor(y))
        topt.zero_grad(), fopt.zero_grad()
        tl.backward(), fl.backward()
        topt.step(), fopt.step()
        assert abs(fl.item() - tl.item()) < 1e-4 * max(1.0, abs(tl.item()))
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(fm.state_dict()[k].numpy(), v.numpy(), rtol=1e-3, atol=1e-4,
                                   err_msg=k)


def test_cnn_shapes_and_bad_sizes():
    m = CNN(1, 8, 10, (4, 4, 4))
    assert m(fastnn.randn(2, 1, 8, 8)).shape == (2, 10)
    assert m.predict(np.zeros((3, 1, 8, 8), np.float32)).shape == (3,)
    with pytest.raises(ValueError, match="too small"):
        CNN(1, 4, 10, (4, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        CNN(1, 8, 10, ())


def test_checkpoint_round_trip(tmp_path):
    fastnn.manual_seed(0)
    m = CNN(3, 8, 4, (4, 6))
    m.train()
    m(fastnn.randn(6, 3, 8, 8))                                 # running statistics move
    path = tmp_path / "cnn.npz"
    save_checkpoint(m, path, data="shapes", seed=3, test_accuracy=0.5)
    m2, meta = load_checkpoint(path, kind="cnn")
    assert meta["kind"] == "cnn" and str(meta["data"]) == "shapes" and int(meta["seed"]) == 3
    assert (m2.in_channels, m2.image_size, m2.num_classes, m2.channels) == (3, 8, 4, (4, 6))
    assert not m2.training
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    x = np.random.default_rng(1).random((5, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(m2.predict(x), m.predict(x))
    with pytest.raises(ValueError, match="holds a cnn model"):
        load_checkpoint(path, kind="mlp")


@needs_sklearn
def test_train_and_eval_cnn_commands(tmp_path, capsys):
    out = tmp_path / "runs" / "cnn.npz"
    assert cli_main(["train", "cnn", "--epochs", "2", "--no-progress", "--out", str(out),
                     "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy: " in text and out.exists()
    acc = float(text.split("test accuracy: ")[1].split()[0])
    assert acc > 0.8                                          # two epochs on the digits
    assert cli_main(["eval", "cnn", "--checkpoint", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy: {acc:.4f}" in text and "per class" in text


@pytest.mark.skipif(not has_shapes, reason="fastnn.data.shapes is not there")
def test_train_cnn_on_shapes_smoke(tmp_path, capsys):
    X, y, Xt, yt, classes = load_image_data("shapes", seed=1, n_train=64, n_test=32)
    assert X.shape == (64, 3, 32, 32) and Xt.shape == (32, 3, 32, 32) and len(classes) == 6
    out = tmp_path / "s.npz"
    assert cli_main(["train", "cnn", "--data", "shapes", "--n-train", "128", "--n-test", "64",
                     "--epochs", "1", "--channels", "4", "8", "8", "--no-progress",
                     "--out", str(out), "--threads", "1"]) == 0
    assert "test accuracy: " in capsys.readouterr().out
    assert cli_main(["eval", "cnn", "--checkpoint", str(out)]) == 0
    assert "64 test images" in capsys.readouterr().out


@pytest.mark.parametrize("argv, phrase", [
    (["train", "cnn", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "cnn", "--data", "cifar"], "invalid choice: 'cifar'"),
    (["train", "cnn", "--dropout", "1"], "--dropout must be in [0, 1)"),
    (["train", "cnn", "--channels", "8", "x"], "expected an integer"),
    (["eval", "cnn", "--checkpoint", "/nonexistent/cnn.npz"], "does not exist"),
])
def test_bad_arguments_are_one_line(argv, phrase, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastnn {argv[0]} cnn: ") and err.count("\n") == 1, err
    assert phrase in err, err


@pytest.mark.parametrize("parser", [cnn_cli._train_parser, cnn_cli._eval_parser])
def test_every_option_shows_its_default(parser):
    p = parser()
    for action in p._actions:
        if not action.option_strings or action.required or "-h" in action.option_strings:
            continue
        text = " ".join(p._get_formatter()._format_action(action).split())
        assert "default" in text, f"{p.prog} {action.option_strings[-1]}: {text!r}"


@pytest.mark.slow
@needs_sklearn
def test_digits_cnn_reaches_98_5_percent():
    # The whole default schedule, however loaded the machine: its time (under 30 s on a quiet
    # 2-core machine) is a benchmark figure, not something a test on a shared machine can assert.
    # The held-out set is 359 images, so one image is 0.28 points and a single seed sits within a
    # couple of images of the line (seed 0 scored 98.6% on an AVX2 machine, 98.3% on CI's): the
    # target is judged on the mean of three seeds, and no seed may fall far below it.
    accs = []
    for seed in range(3):
        model, history, acc, info = train_cnn("digits", seed=seed, progress=False, max_time=3600)
        assert not history["stopped_early"]
        accs.append(acc)
    assert np.mean(accs) >= 0.985, accs
    assert min(accs) >= 0.975, accs
