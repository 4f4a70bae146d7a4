"""The shapes diffusion (issue 12): prompt tokenizer and text encoder, the U-Net, guidance,
img2img, samplers, checkpoints, the colour reader and the CLI, on tiny models."""
import numpy as np
import pytest

from fastnn.cli import main as cli_main
from fastnn.data.shapes import CLASSES, COLORS, make_shapes
from fastnn.models import load_checkpoint, save_checkpoint
from fastnn.models.cnn import CNN
from fastnn.models.diffusion import (Diffusion, DiffusionConfig, ShapesConfig, ShapesDiffusion,
                                     shapes_to_model_space, shapes_to_pixel_space,
                                     shapes_training_data)
from fastnn.models.diffusion_eval import evaluate_shapes, read_background_colors, read_colors
from fastnn.models.text_encoder import (MAX_TOKENS, PromptTokenizer, TextEncoder, make_prompt,
                                        read_prompt)
from fastnn.models.unet import UNet
from fastnn.tensor import Tensor, no_grad

TINY = ShapesConfig(channels="8,16", blocks="1", cond_dim=16, text_dim=16, time_dim=16, steps=10)


def tiny_shapes(seed=0):
    """A tiny shapes model whose output layer is not zero (a fresh one predicts zero noise
    whatever the prompt, which would hide what guidance and prompts do)."""
    diff = ShapesDiffusion(TINY)
    rng = np.random.default_rng(seed)
    with no_grad():
        for name, p in diff.model.named_parameters():
            if name.startswith("unet.out.") or ".conv2." in name:
                p._data[...] = rng.normal(0, 0.2, p.shape)
    return diff


# ---------------------------------------------------------------- tokenizer and prompts
def test_tokenizer_folds_case_and_spanish_accents():
    tok = PromptTokenizer()
    assert tok.words("Un PEZ Azúl, sobre FONDO de rayas!") == ["un", "pez", "azul", "sobre",
                                                             "fondo", "de", "rayas"]
    assert tok.tokens("amarillo") == tok.tokens("AMARILLO") == tok.tokens("Amarillo")
    assert tok.tokens("azúl") == tok.tokens("azul") == tok.tokens("blue")
    assert tok.tokens("árbol") == tok.tokens("arbol") == tok.tokens("tree")
    assert tok.tokens("rojo") == tok.tokens("roja") == tok.tokens("red")
    assert tok.tokens("pez") == tok.tokens("pescado") == tok.tokens("fish")
    assert tok.tokens("rojo") != tok.tokens("rosa")


def test_tokenizer_errors_and_padding():
    tok = PromptTokenizer()
    with pytest.raises(ValueError, match="unknown word.*'perro'.*objects"):
        tok.tokens("un perro rojo")
    with pytest.raises(ValueError, match="no words"):
        tok.tokens("  ¡! ")
    with pytest.raises(ValueError, match="at most"):
        tok.tokens(" ".join(["rojo"] * (MAX_TOKENS + 1)))
    with pytest.raises(TypeError):
        tok.tokens(3)
    ids = tok.encode(["un pez rojo", None])
    assert ids.shape == (2, MAX_TOKENS) and ids.dtype == np.int64
    assert (ids[0, 3:] == 0).all() and (ids[0, :3] > 1).all()
    assert ids[1, 0] == 1 and (ids[1, 1:] == 0).all()     # the null prompt
    np.testing.assert_array_equal(tok.null(2)[0], ids[1])


@pytest.mark.parametrize("prompt, want", [
    ("una casa roja", (1, 0, None)),
    ("a red house", (1, 0, None)),
    ("un pez amarillo sobre fondo de rayas", (4, 2, 1)),
    ("A YELLOW FISH on a striped background", (4, 2, 1)),
    ("flor rosada con lunares", (5, 7, 2)),
    ("árbol", (2, None, None)),
])
def test_read_prompt_in_spanish_and_english(prompt, want):
    assert read_prompt(prompt) == want


def test_read_prompt_rejects_two_colours():
    with pytest.raises(ValueError, match="more than one color"):
        read_prompt("un pez rojo azul")


def test_make_prompt_reads_back_for_every_combination():
    rng = np.random.default_rng(0)
    for o in range(len(CLASSES)):
        for c in range(len(COLORS)):
            for lang in ("es", "en"):
                p = make_prompt(rng, o, c, background=(o + c) % 4, lang=lang)
                assert read_prompt(p) == (o, c, (o + c) % 4), p
    assert "roja" in make_prompt(np.random.default_rng(1), 1, 0, lang="es")   # una casa roja


def test_text_encoder_ignores_padding_and_sees_words():
    tok = PromptTokenizer()
    enc = TextEncoder(tok.vocab_size, dim=16, out_dim=8)
    with no_grad():
        long = enc(tok.encode(["un pez rojo", "un pez azul"]))._data
        short = enc(tok.encode(["un pez rojo"], length=4))._data
    assert long.shape == (2, 8)
    np.testing.assert_allclose(short[0], long[0], rtol=1e-5, atol=1e-6)
    assert np.abs(long[0] - long[1]).max() > 1e-4
    out = enc(tok.encode(["a red fish"]))
    out.sum().backward()
    assert np.abs(enc.tok.weight.grad._data).sum() > 0 and enc.query.grad is not None


# ---------------------------------------------------------------- the U-Net
def test_unet_shapes_gradients_and_bad_input():
    net = UNet(3, (8, 16, 16), (0, 1), cond_dim=8, time_dim=8)
    x = Tensor(np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32),
               requires_grad=True)
    out = net(x, np.array([1, 5]), Tensor(np.ones((2, 8), np.float32)))
    assert out.shape == (2, 3, 16, 16)
    (out * out).sum().backward()
    assert net.out.weight.grad is not None
    with pytest.raises(ValueError, match="divisible by 4"):
        net(Tensor(np.zeros((1, 3, 18, 18), np.float32)), np.array([0]),
            Tensor(np.ones((1, 8), np.float32)))
    with pytest.raises(ValueError, match="blocks"):
        UNet(3, (8, 16), (0, 1))
    with pytest.raises(ValueError, match="only the top level"):
        UNet(3, (8, 16, 32), (1, 0))


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("sampler, steps, dtype", [("ddim", 4, np.float32),
                                                   ("ddpm", None, np.float32),
                                                   ("ddim", 3, np.float64)])
def test_samplers_shapes_dtypes_and_determinism(sampler, steps, dtype):
    diff = tiny_shapes()
    a = diff.sample(["un pez rojo", "a blue car"], sampler=sampler, steps=steps, seed=3,
                    dtype=dtype)
    b = diff.sample(["un pez rojo", "a blue car"], sampler=sampler, steps=steps, seed=3,
                    dtype=dtype)
    assert a.shape == (2, 3, 32, 32) and a.dtype == dtype
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(a, b)


def test_a_float64_model_samples_in_float64():
    diff = tiny_shapes()
    diff.model.double()
    x = diff.sample(["a red fish"], steps=2, dtype=np.float64)
    assert x.dtype == np.float64 and np.isfinite(x).all()


def test_guidance_and_the_prompt_change_the_output():
    diff = tiny_shapes()
    p = ["una casa verde"] * 2
    none = diff.sample(p, guidance=0.0, steps=3, seed=1)
    strong = diff.sample(p, guidance=4.0, steps=3, seed=1)
    other = diff.sample(["a pink fish"] * 2, guidance=4.0, steps=3, seed=1)
    assert np.abs(none - strong).mean() > 1e-3
    assert np.abs(strong - other).mean() > 1e-3


def test_img2img_strength_zero_returns_the_input_for_both_models():
    init = shapes_to_model_space(make_shapes(2, seed=0)[0])
    shapes = tiny_shapes()
    for sampler in ("ddim", "ddpm"):
        np.testing.assert_array_equal(
            shapes.sample(["un pez rojo"] * 2, init=init, strength=0.0, sampler=sampler), init)
    digits = Diffusion(DiffusionConfig(hidden=16, n_blocks=1, time_dim=8, steps=20))
    d_init = np.random.default_rng(0).uniform(-1, 1, (3, 64)).astype(np.float32)
    np.testing.assert_array_equal(digits.sample(np.array([1, 2, 3]), init=d_init, strength=0),
                                  d_init)


def test_img2img_keeps_more_of_the_input_at_lower_strength():
    init = shapes_to_model_space(make_shapes(4, seed=0)[0])
    diff = tiny_shapes()
    far = [np.abs(diff.sample(["a red car"] * 4, init=init, strength=s, steps=10, seed=0)
                  - init).mean() for s in (0.1, 1.0)]
    assert far[0] < far[1]
    with pytest.raises(ValueError, match="strength"):
        diff.sample(["a red car"], init=init[:1], strength=1.5)
    with pytest.raises(ValueError, match="one image per prompt"):
        diff.sample(["a red car"], init=init, strength=0.5)


def test_bad_prompts_and_conditions_are_clear_errors():
    diff = tiny_shapes()
    with pytest.raises(ValueError, match="unknown word"):
        diff.sample(["un gato rojo"])
    with pytest.raises(ValueError, match="token ids"):
        diff.sample(np.zeros(3, np.int64))


def test_one_training_step_reduces_loss_on_a_fixed_batch():
    from fastnn import optim
    diff = ShapesDiffusion(TINY)
    x0, obj, col, bg, _ = shapes_training_data(8, 0, TINY)
    ids = diff.tokenizer.encode([make_prompt(np.random.default_rng(0), o, c) for o, c in
                                 zip(obj, col)])
    opt = optim.Adam(diff.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = diff.loss(x0, ids, np.random.default_rng(0))   # the same noise and steps
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_training_data_leaves_out_the_held_out_pairs():
    x, obj, col, bg, bg_col = shapes_training_data(300, 0, TINY)
    assert (bg_col == -1).all()          # TINY names no background colours
    assert x.shape == (300, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    pairs = set(zip(obj.tolist(), col.tolist()))
    assert (CLASSES.index("fish"), COLORS.index("red")) not in pairs
    assert not pairs & set(TINY.holdout_pairs()) and len(TINY.holdout_pairs()) == 6


def test_checkpoint_round_trip(tmp_path):
    diff = tiny_shapes()
    path = str(tmp_path / "s.npz")
    save_checkpoint(diff, path)
    back, meta = load_checkpoint(path, kind="diffusion")
    assert isinstance(back, ShapesDiffusion) and back.config == diff.config
    np.testing.assert_array_equal(diff.sample(["a red fish"], steps=3, seed=2),
                                  back.sample(["a red fish"], steps=3, seed=2))


def test_pixel_scaling_round_trips():
    img = make_shapes(2, seed=1)[0]
    np.testing.assert_allclose(shapes_to_pixel_space(shapes_to_model_space(img)), img, atol=1e-6)


# ---------------------------------------------------------------- evaluation
def test_colour_reader_reads_real_images():
    images, _, attrs = make_shapes(240, seed=7)
    assert (read_colors(images) == attrs["color"]).mean() >= 0.95
    assert (read_colors(np.full((2, 3, 32, 32), 0.5, np.float32)) == -1).all()   # grey: none


def test_evaluate_shapes_runs_and_reports(tmp_path):
    import io
    diff = tiny_shapes()
    cnn = CNN(3, 32, 6, channels=(4, 8))
    buf = io.StringIO()
    res = evaluate_shapes(diff, cnn, scales=[1.0], per_prompt=1, steps=2, n_train=64,
                          n_real=64, out=buf)
    row = res["results"][0]
    assert row["n_samples"] == 48
    for k in ("object", "color", "held_object", "held_color", "copy_rate", "bg_object",
              "bg_prompt_color", "bg_color"):
        assert 0.0 <= row[k] <= 1.0
    assert row["bg_n_samples"] == 6 * 8
    assert res["frechet_real"] >= 0 and row["frechet"] > 0
    assert "held obj" in buf.getvalue()


# ---------------------------------------------------------------- the CLI
def test_cli_train_sample_img2img_and_errors(tmp_path, capsys):
    ckpt = str(tmp_path / "shapes.npz")
    assert cli_main(["train", "diffusion", "--data", "shapes", "--channels", "8,16",
                     "--steps", "2", "--n-train", "32", "--sample-every", "0", "--no-progress",
                     "--out", ckpt]) == 0
    more = str(tmp_path / "more.npz")            # --resume goes on from the saved weights
    assert cli_main(["train", "diffusion", "--data", "shapes", "--resume", ckpt, "--steps", "1",
                     "--n-train", "16", "--sample-every", "0", "--no-progress", "--out",
                     more]) == 0
    first, _ = load_checkpoint(ckpt)
    second, meta = load_checkpoint(more)
    assert second.config == first.config and int(meta["train_steps"]) == 1
    assert not np.array_equal(first.model.unet.inp.weight._data,
                              second.model.unet.inp.weight._data)
    out = str(tmp_path / "fish")
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "un pez rojo", "--num", "2",
                     "--steps", "2", "--out", out]) == 0
    arr = np.load(out + ".npy")
    assert arr.shape == (2, 3, 32, 32) and (tmp_path / "fish.png").exists()
    assert "held-out" in capsys.readouterr().out
    # img2img at strength 0 gives back its input, from a .npy and from a PNG
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "a blue car", "--num", "2",
                     "--init", out + ".npy", "--strength", "0", "--out", str(tmp_path / "same.npy")
                     ]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "same.npy"), arr, atol=1e-6)
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "a blue car", "--num", "1",
                     "--init", str(tmp_path / "fish.png"), "--strength", "0.5", "--steps", "4",
                     "--out", str(tmp_path / "car.npy")]) == 0
    assert np.load(tmp_path / "car.npy").shape == (1, 3, 32, 32)
    capsys.readouterr()
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "un perro", "--out", out]) == 2
    assert "unknown word" in capsys.readouterr().err
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "un pez", "--strength", "2",
                     "--out", out]) == 2
    assert cli_main(["train", "diffusion", "--data", "shapes", "--channels", "8,x",
                     "--out", ckpt]) == 2


def test_training_sample_grid(tmp_path):
    from fastnn.models.diffusion_cli import GRID_PROMPTS, EMA, _shapes_grid
    diff = tiny_shapes()
    before = diff.model.unet.out.weight._data.copy()
    path = _shapes_grid(diff, EMA(diff.model, 0.9), str(tmp_path / "g" / "step1.png"), steps=2)
    assert open(path, "rb").read(4) == b"\x89PNG" and len(GRID_PROMPTS) == 16
    np.testing.assert_array_equal(diff.model.unet.out.weight._data, before)   # put back


def test_cli_digits_img2img_strength_zero(tmp_path):
    ckpt = str(tmp_path / "d.npz")
    save_checkpoint(Diffusion(DiffusionConfig(hidden=16, n_blocks=1, time_dim=8, steps=20)), ckpt)
    init = np.random.default_rng(0).uniform(0, 16, (3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "init.npy", init)
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "siete", "--num", "3",
                     "--init", str(tmp_path / "init.npy"), "--strength", "0",
                     "--out", str(tmp_path / "o.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), init, atol=1e-5)
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "siete", "--num", "3",
                     "--init", str(tmp_path / "init.npy"), "--strength", "0.5", "--steps", "4",
                     "--out", str(tmp_path / "o2.npy")]) == 0
    assert np.load(tmp_path / "o2.npy").shape == (3, 8, 8)


# ---------------------------------------------------------------- background colours
@pytest.mark.parametrize("prompt, want", [
    ("un pez rojo sobre fondo azul", (4, 0, None, 5)),
    ("a red fish on a blue background", (4, 0, None, 5)),
    ("una casa con fondo verde de rayas", (1, None, 1, 3)),
    ("a yellow car on pink dots", (3, 2, 2, 7)),
    ("una flor morada", (5, 6, None, None)),
])
def test_read_prompt_tells_the_background_colour_from_the_objects(prompt, want):
    assert read_prompt(prompt, bg_color=True) == want
    assert read_prompt(prompt) == want[:3]


def test_read_prompt_rejects_two_background_colours():
    with pytest.raises(ValueError, match="more than one background colour"):
        read_prompt("un pez sobre fondo azul verde", bg_color=True)


def test_make_prompt_with_background_colours_reads_back():
    rng = np.random.default_rng(0)
    for o in range(len(CLASSES)):
        for lang in ("es", "en"):
            for bg in (None, 0, 1, 2, 3):
                k = (o + 3) % len(COLORS)
                p = make_prompt(rng, o, o, background=bg, lang=lang, bg_color=k)
                assert read_prompt(p, bg_color=True) == (o, o, bg, k), p
                assert len(PromptTokenizer().tokens(p)) <= MAX_TOKENS
    assert make_prompt(np.random.default_rng(1), 4, 0, lang="es",
                       bg_color=5).endswith("fondo azul")


def test_make_shapes_background_colours():
    plain, _, a0 = make_shapes(40, seed=5, distractors=False)
    kinds = [-1] * 20 + list(range(8)) * 2 + [-1] * 4
    tinted, _, a1 = make_shapes(40, seed=5, distractors=False, bg_colors=kinds)
    named = np.array(kinds) >= 0
    # images without a named background are the same pixels as without bg_colors
    np.testing.assert_array_equal(tinted[~named], plain[~named])
    assert (a0["bg_color"] == -1).all() and (a1["bg_color"] == kinds).all()
    assert not np.allclose(tinted[named], plain[named])
    # both readers see through each other: the object's colour and the background's
    assert (read_background_colors(tinted[named]) == np.array(kinds)[named]).all()
    assert (read_colors(tinted) == a1["color"]).mean() >= 0.95
    one, _, a2 = make_shapes(3, seed=0, bg_colors="azul")
    assert (a2["bg_color"] == COLORS.index("blue")).all()
    with pytest.raises(ValueError, match="bg_colors"):
        make_shapes(3, seed=0, bg_colors=[1, 2])
    with pytest.raises(ValueError, match="unknown colour"):
        make_shapes(1, seed=0, bg_colors=["plaid"])


def test_background_colour_reader_on_many_real_images():
    rng = np.random.default_rng(2)
    want = rng.integers(0, len(COLORS), 200)
    images, _, _ = make_shapes(200, seed=9, distractors=False, bg_colors=want)
    assert (read_background_colors(images) == want).mean() >= 0.97
    assert (read_background_colors(np.full((2, 3, 32, 32), 0.5, np.float32)) == -1).all()


def test_training_data_names_background_colours_never_the_objects():
    cfg = ShapesConfig(channels="8,16", blocks="1", bg_colors=0.5)
    _, _, col, _, bg_col = shapes_training_data(400, 0, cfg)
    named = bg_col >= 0
    assert 0.4 < named.mean() < 0.6
    assert not (bg_col[named] == col[named]).any()


# ---------------------------------------------------------------- attention, v, min-SNR
def test_unet_attention_reads_real_tokens_only():
    rng = np.random.default_rng(0)
    net = UNet(3, (8, 16), (1,), cond_dim=8, time_dim=8, attn=(0, 1), ctx_dim=6)
    assert len(net.mid_attn) == 2 and len(net.down_attn[0]) == 1
    with no_grad():
        for name, p in net.named_parameters():
            if name.endswith("proj.weight") or name.startswith("out."):
                p._data[...] = rng.normal(0, 0.3, p.shape)
    x = Tensor(rng.normal(size=(2, 3, 8, 8)).astype(np.float32))
    t, cond = np.array([3, 7]), Tensor(np.zeros((2, 8), np.float32))
    ctx = rng.normal(size=(2, 4, 6)).astype(np.float32)
    keep = np.array([[True, True, False, False]] * 2)
    with no_grad():
        base = net(x, t, cond, Tensor(ctx), keep)._data
        padded = ctx.copy()
        padded[:, 2:] += 5.0                                  # only masked positions change
        same = net(x, t, cond, Tensor(padded), keep)._data
        word = ctx.copy()
        word[:, 1] += 1.0                                     # a real token changes
        other = net(x, t, cond, Tensor(word), keep)._data
    np.testing.assert_allclose(same, base, rtol=1e-5, atol=1e-6)
    assert np.abs(other - base).max() > 1e-4
    ctx_t = Tensor(ctx, requires_grad=True)
    net(x, t, cond, ctx_t, keep).sum().backward()
    assert np.abs(ctx_t.grad._data[:, :2]).sum() > 0 and (ctx_t.grad._data[:, 2:] == 0).all()
    with pytest.raises(ValueError, match="pass ctx"):
        net(x, t, cond)
    with pytest.raises(ValueError, match="attn levels"):
        UNet(3, (8, 16), (1,), attn=(2,))


def test_v_prediction_sampler_recovers_the_noise():
    cfg = ShapesConfig(channels="8,16", blocks="1", cond_dim=16, text_dim=16, time_dim=16,
                       steps=10, prediction="v", attn="1")
    diff = ShapesDiffusion(cfg)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    t = 6
    ab = diff.schedule.abar[t]
    xt = diff.schedule.q_sample(x0, np.full(2, t), eps)
    v = np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0
    # a perfect net, with and without the prompt (guidance then changes nothing)
    diff.model.forward = lambda x, steps, ids: Tensor(
        np.concatenate([v] * (len(x) // 2)).astype(np.float32))
    got = diff._eps(xt, t, diff._cond(["a red fish"] * 2), guidance=2.0)
    np.testing.assert_allclose(got, eps, atol=1e-4)


def test_min_snr_weights_and_new_options_train():
    from fastnn import optim
    for pred in ("eps", "v"):
        cfg = ShapesConfig(channels="8,16", blocks="1", cond_dim=16, text_dim=16, time_dim=16,
                           steps=10, prediction=pred, min_snr=5.0, attn="1")
        diff = ShapesDiffusion(cfg)
        x0, obj, col, _, _ = shapes_training_data(8, 0, cfg)
        ids = diff.tokenizer.encode([make_prompt(np.random.default_rng(0), o, c)
                                     for o, c in zip(obj, col)])
        opt = optim.Adam(diff.model.parameters(), lr=3e-3)
        losses = []
        for _ in range(5):
            loss = diff.loss(x0, ids, np.random.default_rng(0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], (pred, losses)
        # the weighted loss is below the plain one: every weight is at most 1
        plain = ShapesDiffusion(ShapesConfig(**{**cfg.__dict__, "min_snr": 0.0}),
                                model=diff.model)
        assert diff.loss(x0, ids, np.random.default_rng(1)).item() <= plain.loss(
            x0, ids, np.random.default_rng(1)).item() + 1e-6
    with pytest.raises(ValueError, match="prediction"):
        ShapesDiffusion(ShapesConfig(channels="8,16", blocks="1", prediction="x"))


def test_checkpoints_from_before_the_new_options_still_load(tmp_path):
    diff = tiny_shapes()
    state = diff.state()
    for k in ("attn", "prediction", "min_snr", "bg_colors", "backgrounds", "t_bias",
              "snr_floor"):
        del state[f"config.{k}"]
    back = ShapesDiffusion.from_state(state)
    assert (back.config.attn, back.config.prediction, back.config.min_snr,
            back.config.bg_colors, back.config.backgrounds, back.config.t_bias,
            back.config.snr_floor) == ("", "eps", 0.0, 0.0, "", 0.0, 0.0)
    np.testing.assert_array_equal(diff.sample(["a red fish"], steps=2, seed=1),
                                  back.sample(["a red fish"], steps=2, seed=1))


def test_cli_show_process_for_shapes(tmp_path, capsys):
    ckpt = str(tmp_path / "s.npz")
    save_checkpoint(tiny_shapes(), ckpt)
    out = str(tmp_path / "proc")
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "un pez rojo sobre fondo azul",
                     "--show-process", "--steps", "4", "--out", out]) == 0
    rows = np.load(out + ".npy")
    assert rows.shape == (2, 10, 3, 32, 32) and (tmp_path / "proc.png").exists()
    # the top row starts from a real red fish on blue and ends in noise
    assert read_colors(rows[0, :1])[0] == COLORS.index("red")
    assert read_background_colors(rows[0, :1])[0] == COLORS.index("blue")
    assert np.abs(rows[0, -1] - rows[0, 0]).mean() > 0.1
    assert "denoised" in capsys.readouterr().out
    assert cli_main(["sample", "--checkpoint", ckpt, "--prompt", "rojo", "--show-process",
                     "--out", out]) == 2
    assert "names no object" in capsys.readouterr().err


def test_training_backgrounds_can_be_chosen():
    from fastnn.data.shapes import BACKGROUNDS
    x, _, _, bg, _ = shapes_training_data(120, 0, TINY)
    assert set(bg.tolist()) == set(range(len(BACKGROUNDS)))          # "" : all four
    plain = ShapesConfig(**{**TINY.__dict__, "backgrounds": "plain"})
    xp, _, _, bgp, _ = shapes_training_data(120, 0, plain)
    assert (bgp == BACKGROUNDS.index("plain")).all()
    # a plain background is one colour: the corners of every image agree with each other
    corners = xp[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.abs(corners - corners[:, :, :1]).max() < 1e-5
    two = ShapesConfig(**{**TINY.__dict__, "backgrounds": "liso, rayas"})
    assert two.background_ids() == [0, 1]
    assert set(shapes_training_data(60, 0, two)[3].tolist()) == {0, 1}
    with pytest.raises(ValueError, match="background"):
        ShapesConfig(backgrounds="plaid").background_ids()


def test_t_bias_draws_more_noisy_steps_and_trains():
    cfg = ShapesConfig(**{**TINY.__dict__, "steps": 1000, "t_bias": 1.0})
    diff = ShapesDiffusion(cfg)
    seen = []
    real_model = diff.model
    diff.model = lambda x, t, ids: (seen.extend(np.asarray(t).tolist()), real_model(x, t, ids))[1]
    x0, obj, col, _, _ = shapes_training_data(64, 0, cfg)
    ids = diff.tokenizer.encode([make_prompt(np.random.default_rng(0), o, c)
                                 for o, c in zip(obj, col)])
    for seed in range(4):
        diff.loss(x0, ids, np.random.default_rng(seed))
    t = np.array(seen)
    assert 0 <= t.min() and t.max() < 1000
    assert 0.65 < (t >= 500).mean() < 0.85          # density 2u: 75% in the noisier half
    with pytest.raises(ValueError, match="t_bias"):
        ShapesDiffusion(ShapesConfig(**{**TINY.__dict__, "t_bias": -1.0}))


def test_cli_train_backgrounds_option(tmp_path):
    ckpt = str(tmp_path / "s.npz")
    assert cli_main(["train", "diffusion", "--data", "shapes", "--channels", "8,16",
                     "--steps", "1", "--n-train", "16", "--sample-every", "0", "--no-progress",
                     "--backgrounds", "all", "--t-bias", "0.5", "--out", ckpt]) == 0
    diff, _ = load_checkpoint(ckpt)
    assert diff.config.backgrounds == "" and diff.config.t_bias == 0.5
    assert cli_main(["train", "diffusion", "--data", "shapes", "--channels", "8,16",
                     "--steps", "1", "--n-train", "16", "--sample-every", "0", "--no-progress",
                     "--out", ckpt]) == 0
    assert load_checkpoint(ckpt)[0].config.backgrounds == "plain"      # the default
    assert cli_main(["train", "diffusion", "--data", "shapes", "--channels", "8,16",
                     "--backgrounds", "plaid", "--out", ckpt]) == 2


def test_snr_floor_keeps_the_noisiest_steps_in_the_loss():
    # a fresh model predicts zero, so each loss is the mean of weight * target^2
    base = {**TINY.__dict__, "steps": 1000, "prediction": "v", "min_snr": 5.0}
    x0, obj, col, _, _ = shapes_training_data(16, 0, ShapesConfig(**base))
    ids = ShapesDiffusion(ShapesConfig(**base)).tokenizer.encode(["a red fish"] * 16)
    losses = {}
    for floor in (0.0, 1.0):
        diff = ShapesDiffusion(ShapesConfig(**{**base, "snr_floor": floor, "t_bias": 20.0}))
        losses[floor] = diff.loss(x0, ids, np.random.default_rng(3)).item()
    # t_bias 20 puts nearly every step where SNR << 1: min-SNR alone weighs them ~SNR, the
    # floor weighs the x0 error 1, i.e. the v error 1 / (SNR + 1) ~ 1
    assert losses[1.0] > 5 * losses[0.0]
    with pytest.raises(ValueError, match="snr_floor"):
        ShapesDiffusion(ShapesConfig(**{**base, "snr_floor": -1.0}))
