"""Neural style transfer (fastnn/models/style.py, style_cli.py) and image files
(fastnn/data/images.py), on tiny images: the Gram matrix and its gradient against numpy, the
transfer lowering both losses with either optimizer and either feature network, image files
round-tripping, and `fastnn style` end to end, with its one-line errors."""
import os

import numpy as np
import pytest

pytest.importorskip("PIL")

import fastnn  # noqa: E402
from fastnn.cli import main as cli_main  # noqa: E402
from fastnn.data import load_image, save_image  # noqa: E402
from fastnn.data.images import center_crop, resize_image  # noqa: E402
from fastnn.models.cnn import CNN  # noqa: E402
from fastnn.models.style import (CNNFeatures, RandomFeatures, StyleObjective,  # noqa: E402
                                 gram_matrix, transfer)
from fastnn.tensor import Tensor  # noqa: E402


def _images(size=24, seed=0):
    """A 'content' image (a bright disc on a gradient) and a 'style' image (coloured stripes
    with noise): different layouts and different textures."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).astype(np.float64)
    content = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * disc, 0.8 - 0.5 * yy])
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx + yy) * 4)
    style = np.stack([stripes, 1 - stripes, 0.5 * stripes]) + 0.1 * rng.standard_normal(
        (3, size, size))
    return (np.clip(content, 0, 1).astype(np.float32), np.clip(style, 0, 1).astype(np.float32))


# ---------------------------------------------------------------- the Gram matrix
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_matrix_and_its_gradient_match_numpy(dtype):
    rng = np.random.default_rng(1)
    f = rng.standard_normal((1, 5, 6, 7)).astype(dtype)
    w = rng.standard_normal((5, 5)).astype(dtype)        # not symmetric: tests both halves
    t = fastnn.from_numpy(f.copy()).requires_grad_(True)
    g = gram_matrix(t)
    m = f.reshape(5, 42)
    ref = m @ m.T / 42
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert g.dtype == t.dtype and tuple(g.shape) == (5, 5)
    np.testing.assert_allclose(g._data, ref, rtol=tol, atol=tol)
    (g * fastnn.from_numpy(w)).sum().backward()
    # d/dM sum(W * M M^T / K) = (W + W^T) M / K
    np.testing.assert_allclose(t.grad._data.reshape(5, 42), (w + w.T) @ m / 42, rtol=tol * 10,
                               atol=tol * 10)
    np.testing.assert_allclose(gram_matrix(fastnn.from_numpy(f[0]))._data, ref, rtol=tol, atol=tol)


def test_gram_matrix_rejects_a_batch():
    with pytest.raises(ValueError, match="one image"):
        gram_matrix(Tensor(np.zeros((2, 3, 4, 4), np.float32)))


def test_random_features_are_seeded_and_shaped():
    a, b = RandomFeatures((4, 6, 8), seed=3), RandomFeatures((4, 6, 8), seed=3)
    x = Tensor(np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32))
    fa, fb = a(x), b(x)
    assert [tuple(f.shape) for f in fa] == [(1, 4, 16, 16), (1, 6, 8, 8), (1, 8, 4, 4)]
    for u, v in zip(fa, fb):
        np.testing.assert_array_equal(u._data, v._data)
    assert not any(p.requires_grad for p in a.parameters())
    c = RandomFeatures((4, 6, 8), seed=4)(x)
    assert not np.allclose(c[0]._data, fa[0]._data)


# ---------------------------------------------------------------- the transfer
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_transfer_from_noise_lowers_both_losses(optimizer):
    content, style = _images()
    obj = StyleObjective(RandomFeatures((8, 16, 16), seed=0), content, style, style_weight=1.0)
    noise = np.random.default_rng(0).random(content.shape).astype(np.float32)
    before = obj.measure(noise)
    out, history = transfer(obj, steps=40, optimizer=optimizer, init="noise", seed=0,
                            lr=0.05 if optimizer == "adam" else None)
    after = obj.measure(out)
    assert out.shape == content.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert len(history) >= 40
    assert after["content"] < 0.7 * before["content"], (before, after)
    assert after["style"] < 0.5 * before["style"], (before, after)


def test_transfer_from_the_content_image_meets_the_targets_on_a_tiny_image():
    """The issue's targets in small: the style loss falls >= 10x from the content image's, and
    the content loss stays below what the style image itself scores."""
    content, style = _images(32)
    obj = StyleObjective(RandomFeatures((8, 16, 16), seed=0), content, style, style_weight=1e3)
    at_content, at_style = obj.measure(content), obj.measure(style)
    out, _ = transfer(obj, steps=60, optimizer="lbfgs")
    final = obj.measure(out)
    assert final["style"] * 10 <= at_content["style"], (at_content, final)
    assert final["content"] < at_style["content"], (at_style, final)


def test_transfer_in_float64_with_tv_and_layer_choice():
    content, style = (a.astype(np.float64) for a in _images(16))
    obj = StyleObjective(RandomFeatures((4, 8), seed=1, dtype=np.float64), content, style,
                         style_weight=10.0, tv_weight=1.0, content_layer=1, style_layers=[0])
    noise = np.random.default_rng(2).random(content.shape)
    before = obj.measure(noise)
    out, history = transfer(obj, steps=15, optimizer="lbfgs", init=noise)
    assert out.dtype == np.float64
    assert "tv" in history[-1]
    assert obj.measure(out)["total"] < before["total"]


def test_transfer_with_a_cnn_as_features():
    fastnn.manual_seed(0)
    cnn = CNN(in_channels=3, image_size=16, num_classes=6, channels=(4, 8))
    net = CNNFeatures(cnn)
    assert net.names == ["stage1", "stage2"]
    content, style = _images(16)
    obj = StyleObjective(net, content, style, style_weight=10.0)
    noise = np.random.default_rng(0).random(content.shape).astype(np.float32)
    before = obj.measure(noise)
    out, _ = transfer(obj, steps=20, init="noise")
    after = obj.measure(out)
    assert after["style"] < before["style"] and after["content"] < before["content"]
    assert not net.training
    net.train()                               # BatchNorm keeps its running statistics
    assert not net.cnn.training


def test_objective_rejects_bad_input():
    content, style = _images(16)
    net = RandomFeatures((4, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        StyleObjective(net, content[:1], style)
    with pytest.raises(ValueError, match="at least 4x4"):
        StyleObjective(net, content[:, :3, :3], style)
    with pytest.raises(ValueError, match="style_weight"):
        StyleObjective(net, content, style, style_weight=-1)
    with pytest.raises(ValueError, match="blank"):      # mid-grey: all-zero random features
        StyleObjective(net, np.full_like(content, 0.5), style)
    with pytest.raises(ValueError, match="layers"):
        StyleObjective(net, content, style, content_layer=3)
    obj = StyleObjective(net, content, style)
    with pytest.raises(ValueError, match="optimizer"):
        transfer(obj, steps=1, optimizer="sgd")
    with pytest.raises(ValueError, match="init"):
        transfer(obj, steps=1, init="zeros")


# ---------------------------------------------------------------- image files
def test_image_files_round_trip(tmp_path):
    content, _ = _images(20)
    png = save_image(tmp_path / "a.png", content)
    back = load_image(png)
    assert back.shape == (3, 20, 20) and back.dtype == np.float32
    np.testing.assert_allclose(back, content, atol=0.5 / 255 + 1e-6)      # 8 bits per channel
    jpg = save_image(tmp_path / "sub" / "a.jpg", content)                 # folder created
    assert np.abs(load_image(jpg) - content).mean() < 0.06                # lossy, but close
    grey = load_image(png, channels=1, dtype=np.float64)
    assert grey.shape == (1, 20, 20) and grey.dtype == np.float64
    save_image(tmp_path / "g.png", grey)
    np.testing.assert_allclose(load_image(tmp_path / "g.png", channels=1), grey, atol=0.5 / 255)


def test_resize_and_crop():
    img = np.random.default_rng(0).random((3, 30, 50)).astype(np.float32)
    sq = center_crop(img)
    np.testing.assert_array_equal(sq, img[:, :, 10:40])
    small = resize_image(img, (15, 25))
    assert small.shape == (3, 15, 25) and small.min() >= 0 and small.max() <= 1
    # a constant image stays constant whatever the filter
    np.testing.assert_allclose(resize_image(np.full((3, 9, 9), 0.25, np.float32), 4), 0.25,
                               atol=1e-6)


def test_load_image_resizes_the_centre_square(tmp_path):
    img = np.zeros((3, 40, 60), np.float32)
    img[:, :, 10:50] = 1.0                      # the centre 40x40 square is white
    path = save_image(tmp_path / "wide.png", img)
    out = load_image(path, size=16)
    assert out.shape == (3, 16, 16)
    assert out.min() > 0.95                     # cropped, not squeezed
    assert load_image(path, size=(8, 12)).shape == (3, 8, 12)


def test_sample_images_load_without_files():
    pytest.importorskip("sklearn")
    china = load_image("sample:china")
    assert china.shape == (3, 427, 640) and china.std() > 0.1    # scikit-learn's photograph
    flower = load_image("sample:flower", size=32)
    assert flower.shape == (3, 32, 32) and 0 <= flower.min() and flower.max() <= 1
    with pytest.raises(ValueError, match="sample:china"):
        load_image("sample:mona_lisa")


def test_bad_image_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        load_image(bad)
    with pytest.raises(ValueError, match="size"):
        load_image(bad, size=0)
    with pytest.raises(ValueError, match="size"):
        load_image(bad, size=(4,))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        save_image(tmp_path / "x.png", np.zeros((5, 4, 4)))
    with pytest.raises(ValueError, match="format"):
        save_image(tmp_path / "x.unknownext", np.zeros((3, 4, 4)))


# ---------------------------------------------------------------- the command
def _files(tmp_path, size=40):
    content, style = _images(size)
    return (save_image(tmp_path / "content.png", content),
            save_image(tmp_path / "style.jpg", style))


def test_cli_writes_the_result_and_the_process_strip(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    c, s = _files(tmp_path)
    out = tmp_path / "out" / "result.png"
    rc = cli_main(["style", "--content", c, "--style", s, "--out", str(out), "--size", "32",
                   "--steps", "12", "--channels", "8,16,16", "--style-weight", "100",
                   "--show-process", "--frames", "4", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = load_image(out)
    assert result.shape == (3, 32, 32)
    assert not np.allclose(result, load_image(c, size=32), atol=2 / 255)   # it changed
    strip = tmp_path / "out" / "result_process.png"
    assert strip.exists() and load_image(strip).shape[2] > 3 * load_image(strip).shape[1]
    assert "style loss" in printed and "content loss" in printed


def test_cli_progress_bar_shows_both_losses(tmp_path, capsys):
    pytest.importorskip("tqdm")
    c, s = _files(tmp_path)
    rc = cli_main(["style", "--content", c, "--style", s, "--out", str(tmp_path / "r.png"),
                   "--size", "16", "--steps", "3", "--channels", "4,8", "--optimizer", "adam"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "content" in err and "style" in err and "3/3" in err


def test_cli_with_a_cnn_checkpoint(tmp_path, capsys):
    from fastnn.models.checkpoint import save_checkpoint
    fastnn.manual_seed(0)
    ckpt = save_checkpoint(CNN(in_channels=3, image_size=16, num_classes=6, channels=(4, 8)),
                           str(tmp_path / "cnn.npz")) or str(tmp_path / "cnn.npz")
    c, s = _files(tmp_path)
    rc = cli_main(["style", "--content", c, "--style", s, "--out", str(tmp_path / "r.png"),
                   "--size", "16", "--steps", "3", "--features", ckpt, "--no-progress"])
    assert rc == 0, capsys.readouterr()
    assert "the CNN of" in capsys.readouterr().out


@pytest.mark.parametrize("extra, phrase", [
    (["--content", "MISSING.png"], "not found"),
    (["--size", "0"], "--size must be >= 1"),
    (["--size", "8"], "--size must be between 16"),
    (["--size", "abc"], "expected an integer"),
    (["--steps", "-1"], "--steps must be >= 0"),
    (["--optimizer", "sgd"], "invalid choice"),
    (["--out", "OUT/result.txt"], "--out must end in .png or .jpg"),
    (["--features", "MISSING.npz"], "no such checkpoint"),
    (["--channels", "4,x"], "--channels"),
    (["--style", "sample:nothing"], "unknown sample image"),
])
def test_cli_bad_input_is_one_line_and_status_2(tmp_path, capsys, extra, phrase):
    c, s = _files(tmp_path)
    args = ["style", "--content", c, "--style", s, "--out", str(tmp_path / "r.png"),
            "--size", "16", "--steps", "1", "--no-progress"]
    fixed = [str(tmp_path / e) if e.startswith(("MISSING", "OUT/")) else e for e in extra]
    assert cli_main(args + fixed) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn style: ") and err.count("\n") == 1, err
    assert phrase in err, err
    assert not os.path.exists(tmp_path / "r.png")


def test_cli_unreadable_image_and_non_cnn_checkpoint(tmp_path, capsys):
    from fastnn.models.checkpoint import save_checkpoint
    from fastnn.models.mlp import MLP
    c, s = _files(tmp_path)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00\x01 not a jpeg")
    base = ["style", "--style", s, "--out", str(tmp_path / "r.png"), "--size", "16",
            "--steps", "1", "--no-progress"]
    assert cli_main(base + ["--content", str(bad)]) == 2
    assert "not an image Pillow can read" in capsys.readouterr().err
    mlp = str(tmp_path / "mlp.npz")
    save_checkpoint(MLP([4, 3, 2]), mlp)
    assert cli_main(base + ["--content", c, "--features", mlp]) == 2
    assert "needs a CNN" in capsys.readouterr().err


def test_process_strip_frames_start_and_end():
    from fastnn.models.style_cli import frame_steps
    assert frame_steps(300, 6) == [0, 12, 48, 108, 192, 300]
    assert frame_steps(3, 6) == [0, 1, 2, 3]              # fewer steps than frames
    assert frame_steps(0, 6) == [0]


def test_every_option_of_fastnn_style_shows_its_default():
    from fastnn.models.style_cli import _parser
    parser = _parser()
    assert parser.prog == "fastnn style"
    for action in parser._actions:
        if not action.option_strings or "-h" in action.option_strings:
            continue
        text = " ".join(parser._get_formatter()._format_action(action).split())
        assert "default" in text, f"fastnn style {action.option_strings[-1]}: {text!r}"
