"""Diffusion (issue 6): schedule math, training, samplers, prompts, checkpoints and the CLI."""
import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.cli import main as cli_main
from fastnn.models import load_checkpoint, save_checkpoint
from fastnn.models.diffusion import (Diffusion, DiffusionConfig, NoiseSchedule, Schedule,
                                     parse_prompt, to_model_space, to_pixel_space)
from fastnn.models.diffusion_eval import frechet_distance

TINY = DiffusionConfig(hidden=32, n_blocks=1, time_dim=16, steps=50)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 100, 1000])
def test_schedule_abar_is_monotone_and_ends_near_zero(kind, steps):
    s = NoiseSchedule(steps, kind)
    assert s.abar.shape == (steps,)
    assert np.all(np.diff(s.abar) < 0)
    assert 0 < s.abar[-1] < 0.01 and s.abar[0] > 0.97
    assert np.all((s.betas > 0) & (s.betas < 1))


def test_closed_form_q_matches_iterated_noising():
    assert Schedule is NoiseSchedule  # the old name stays
    s = NoiseSchedule(40, "linear")
    rng = np.random.default_rng(0)
    x0 = np.array([[0.9, -0.4, 0.0]])
    # Exactly: iterating x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps keeps a Gaussian whose
    # mean scale and variance follow these recursions; they must equal the closed form.
    mean_scale, var = 1.0, 0.0
    for t in range(40):
        mean_scale *= np.sqrt(s.alphas[t])
        var = s.alphas[t] * var + s.betas[t]
        assert mean_scale == pytest.approx(np.sqrt(s.abar[t]), rel=1e-12)
        assert var == pytest.approx(1 - s.abar[t], rel=1e-10)
    # And by simulation: many iterated chains against q_sample at the same step.
    n, t = 20000, 25
    x = np.repeat(x0, n, axis=0)
    for step in range(t + 1):
        x = np.sqrt(s.alphas[step]) * x + np.sqrt(s.betas[step]) * rng.standard_normal(x.shape)
    closed = s.q_sample(np.repeat(x0, n, axis=0), np.full(n, t), rng.standard_normal(x.shape))
    np.testing.assert_allclose(x.mean(0), closed.mean(0), atol=0.03)
    np.testing.assert_allclose(x.std(0), closed.std(0), atol=0.03)
    np.testing.assert_allclose(closed.mean(0), np.sqrt(s.abar[t]) * x0[0], atol=0.03)


def test_one_training_step_reduces_loss_on_a_fixed_batch():
    fastnn.manual_seed(0)
    diff = Diffusion(TINY)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (64, 64)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    opt = optim.Adam(diff.model.parameters(), lr=1e-2)

    def fixed_loss():
        return diff.loss(x0, y, np.random.default_rng(123))  # same t, noise, dropped prompts

    before = fixed_loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert fixed_loss().item() < before.item()


@pytest.mark.parametrize("sampler,steps", [("ddim", 10), ("ddpm", None)])
def test_sampler_shapes_range_and_determinism(sampler, steps):
    fastnn.manual_seed(1)
    diff = Diffusion(TINY)
    labels = np.array([0, 3, 7])
    a = diff.sample(labels, guidance=2.0, sampler=sampler, steps=steps, seed=5)
    b = diff.sample(labels, guidance=2.0, sampler=sampler, steps=steps, seed=5)
    c = diff.sample(labels, guidance=2.0, sampler=sampler, steps=steps, seed=6)
    assert a.shape == (3, 64) and a.dtype == np.float32
    assert np.abs(a).max() <= 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    px = to_pixel_space(a)
    assert px.shape == (3, 8, 8) and px.min() >= 0 and px.max() <= 16


def test_trajectory_starts_from_noise_and_ends_at_the_sample():
    diff = Diffusion(TINY)
    x, path = diff.sample([4], sampler="ddim", steps=5, seed=0, trajectory=True)
    assert len(path) == 6
    np.testing.assert_array_equal(path[-1], x)


def test_pixel_scaling_round_trips():
    img = np.arange(64, dtype=np.float32).reshape(1, 8, 8) % 17
    np.testing.assert_allclose(to_pixel_space(to_model_space(img)), img, atol=1e-6)


@pytest.mark.parametrize("prompt,digit", [("7", 7), ("seven", 7), ("siete", 7), (" Siete ", 7),
                                          ("SEIS", 6), ("cero", 0), ("nine", 9), ("dós", 2)])
def test_prompts_in_english_spanish_and_digits(prompt, digit):
    assert parse_prompt(prompt) == digit


@pytest.mark.parametrize("bad", ["", "ten", "once", "77", "sevn"])
def test_unknown_prompt_lists_what_is_understood(bad):
    with pytest.raises(ValueError, match=r"unknown prompt .*7 \(seven/siete\)"):
        parse_prompt(bad)


def test_bad_sampler_and_steps_are_clear_errors():
    diff = Diffusion(TINY)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        diff.sample([1], sampler="euler")
    with pytest.raises(ValueError, match=r"DDIM steps must be in \[1, 50\]"):
        diff.sample([1], sampler="ddim", steps=500)


def test_checkpoint_round_trip_and_bad_checkpoints(tmp_path):
    diff = Diffusion(TINY)
    path = tmp_path / "d.npz"
    fastnn.save(diff.state(), path)
    again = Diffusion.from_state(fastnn.load(path), str(path))
    np.testing.assert_array_equal(again.sample([2], steps=3, seed=1),
                                  diff.sample([2], steps=3, seed=1))
    state = fastnn.load(path)
    state["model.out.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="weights do not match"):
        Diffusion.from_state(state, "x")
    with pytest.raises(ValueError, match="not a fastnn diffusion checkpoint"):
        Diffusion.from_state({"transformer.wte.weight": np.zeros((2, 2))}, "x")
    # through the one checkpoint loader, with extra meta entries
    save_checkpoint(diff, tmp_path / "m.npz", seed=3)
    again, meta = load_checkpoint(tmp_path / "m.npz", kind="diffusion")
    assert meta["kind"] == "diffusion" and int(meta["seed"]) == 3
    np.testing.assert_array_equal(again.sample([2], steps=3, seed=1),
                                  diff.sample([2], steps=3, seed=1))


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((500, 4))
    assert frechet_distance(f, f) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(f, f + 1.0) == pytest.approx(4.0, rel=1e-6)


def test_cli_train_sample_show_process_and_errors(tmp_path, capsys):
    ckpt = str(tmp_path / "d.npz")
    assert cli_main(["train", "diffusion", "--steps", "3", "--out", ckpt]) == 0
    out = str(tmp_path / "seven")
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "siete", "--num", "4",
                     "--steps", "3", "--out", out]) == 0
    arr = np.load(out + ".npy")
    assert arr.shape == (4, 8, 8) and arr.min() >= 0 and arr.max() <= 16
    assert open(out + ".png", "rb").read(4) == b"\x89PNG"
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "3", "--steps", "3",
                     "--show-process", "--out", str(tmp_path / "strip.png")]) == 0
    assert open(tmp_path / "strip.png", "rb").read(4) == b"\x89PNG"
    capsys.readouterr()  # the training's progress bar
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "eleven", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn sample: unknown prompt 'eleven'") and err.count("\n") == 1
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    assert cli_main(["sample", "--checkpoint", str(bad), "--prompt", "1", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastnn sample: ") and "bad.npz" in err and err.count("\n") == 1
    assert cli_main(["sample", "--checkpoint", str(tmp_path / "none.npz"), "--prompt", "1",
                     "--out", out]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "fastnn train diffusion" in err
    # a checkpoint of another model is refused by kind
    fastnn.save({"kind": np.array("fastnn-gpt")}, tmp_path / "g.npz")
    assert cli_main(["sample", "--checkpoint", str(tmp_path / "g.npz"), "--prompt", "1",
                     "--out", out]) == 2
    assert "holds a gpt model, not a diffusion one" in capsys.readouterr().err
