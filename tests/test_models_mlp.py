"""The lessons' first models: Perceptron (AND, OR, not XOR), the XOR MLP, the digits MLP with its
fit loop, checkpoints and `fastnn train/eval` commands."""
import numpy as np
import pytest

import fastnn
from fastnn import cli, optim
from fastnn.data import DataLoader, load_digits
from fastnn.models import MLP, Perceptron, load_checkpoint
from fastnn.models.perceptron import INPUTS, TRUTH_TABLES, xor_mlp
from fastnn.training import evaluate, fit

try:
    import torch
except ImportError:
    torch = None


@pytest.mark.parametrize("gate", ["AND", "OR"])
def test_perceptron_learns_linearly_separable_gates(gate):
    p = Perceptron(2)
    assert p.fit(INPUTS, TRUTH_TABLES[gate]) is not None
    np.testing.assert_array_equal(p(INPUTS)._data, TRUTH_TABLES[gate])


def test_perceptron_cannot_learn_xor_but_an_mlp_can():
    p = Perceptron(2)
    assert p.fit(INPUTS, TRUTH_TABLES["XOR"], epochs=200) is None
    assert (p(INPUTS)._data != TRUTH_TABLES["XOR"]).any()
    for seed in range(3):
        _, pred = xor_mlp(seed=seed)
        np.testing.assert_array_equal(pred, TRUTH_TABLES["XOR"])


def test_train_perceptron_command_prints_truth_tables(capsys):
    assert cli.main(["train", "perceptron"]) == 0
    out = capsys.readouterr().out
    assert "AND: learned" in out and "OR: learned" in out
    assert "XOR: did not converge" in out and "XOR: learned" in out


def test_mlp_layout_matches_torch_keys():
    m = MLP((64, 32, 10), dropout=0.1)
    assert list(m.state_dict()) == ["net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias"]
    assert m.state_dict()["net.0.weight"].shape == (32, 64)
    if torch is not None:
        class TorchMLP(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                               torch.nn.Dropout(0.1), torch.nn.Linear(32, 10))

            def forward(self, x):
                return self.net(x)
        t = TorchMLP()
        assert {k: tuple(v.shape) for k, v in t.state_dict().items()} == \
            {k: v.shape for k, v in m.state_dict().items()}
        m.load_state_dict(t.state_dict())
        x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
        t.eval()
        m.eval()
        with torch.no_grad():
            np.testing.assert_allclose(m(fastnn.tensor(x))._data, t(torch.tensor(x)).numpy(),
                                       rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        MLP((64,))


def test_fit_history_validation_and_loss_curve(tmp_path):
    d = load_digits()
    fastnn.manual_seed(0)
    model = MLP((64, 64, 10))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    train = DataLoader((d.X_train, d.y_train), batch_size=64, shuffle=True, seed=0)
    test = DataLoader((d.X_test, d.y_test), batch_size=256)
    png = tmp_path / "curves" / "loss.png"
    h = fit(model, opt, train, epochs=8, val_loader=test, progress=True, plot=png,
            scheduler=optim.lr_scheduler.StepLR(opt, 4, 0.5))
    assert h["epoch"] == list(range(1, 9)) and not h["stopped_early"]
    assert h["train_loss"][-1] < h["train_loss"][0] / 3
    assert h["val_acc"][-1] > 0.9 and h["train_acc"][-1] > 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.25)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss, acc = evaluate(model, test)
    assert loss == pytest.approx(h["val_loss"][-1]) and acc == pytest.approx(h["val_acc"][-1])
    assert model.training
    h = fit(model, opt, train, epochs=50, max_time=0.0, progress=False)
    assert h["stopped_early"] and len(h["epoch"]) == 1


def test_train_and_eval_mlp_commands(tmp_path, capsys):
    out = tmp_path / "runs" / "mlp.npz"
    rc = cli.main(["train", "mlp", "--epochs", "6", "--hidden", "64", "--dropout", "0",
                   "--out", str(out), "--no-progress", "--max-time", "60"])
    assert rc == 0
    text = capsys.readouterr().out
    acc = float(text.split("test accuracy:")[1].split()[0])
    assert acc > 0.9 and out.exists()
    assert cli.main(["eval", "mlp", "--checkpoint", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy: {acc:.4f}" in text and "MLP 64-64-10" in text
    model, meta = load_checkpoint(out, kind="mlp")
    assert model.sizes == (64, 64, 10)
    assert float(meta["test_accuracy"]) == pytest.approx(acc, abs=1e-4)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["eval", "mlp", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn eval mlp: ") and "bad.npz" in err and "checkpoint" in err
    assert err.count("\n") == 1 and "Traceback" not in err
