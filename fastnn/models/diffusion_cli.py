"""`fastnn train diffusion`, `fastnn sample` and `fastnn eval diffusion`.

    fastnn train diffusion                             # writes runs/diffusion.npz
    fastnn sample --prompt siete                       # runs/samples/siete.png and .npy
    fastnn sample --prompt siete --num 16 --out seven  # seven.png and seven.npy
    fastnn sample --prompt 3 --out runs/three.npy      # only the array
    fastnn sample --prompt 3 --show-process            # runs/samples/3_process.png and .npy
    fastnn eval diffusion --checkpoint runs/diffusion.npz

    fastnn train diffusion --data shapes                # runs/diffusion_shapes.npz (~15 min)
    fastnn sample --checkpoint runs/diffusion_shapes.npz --prompt "un pez rojo" --out fish.png
    fastnn sample --checkpoint runs/diffusion_shapes.npz --prompt "a blue car" \
        --init fish.png --strength 0.6 --out car.png    # img2img (SDEdit), digits too
    fastnn sample --checkpoint runs/diffusion_shapes.npz --prompt "un pez rojo sobre fondo azul" \
        --show-process                                  # a real one noised, a sample denoised
    fastnn eval diffusion --checkpoint runs/diffusion_shapes.npz --cnn runs/cnn_shapes.npz

--out: a path ending in .png writes only the picture, one ending in .npy only the array
(N, 8, 8 pixels 0..16; shapes: N, 3, 32, 32 in [0, 1]), anything else is a stem and gets both;
folders are created. --init: a .npy of that kind, or a PNG (digits: ink dark, as `fastnn sample`
writes them; shapes: RGB), resized to the model's image size.
"""
import math
import os
import re
import sys
import time

import numpy as np

from .. import optim
from ..errors import require
from ..tensor import manual_seed
from .common_cli import (Parser, add_device_option, add_runtime_options, finite_float,
                         nonnegative_int, number_list, positive_float, positive_int, runs_path,
                         setup_runtime)
from .checkpoint import load_checkpoint, save_checkpoint
from .diffusion import (EMA, Diffusion, DiffusionConfig, ShapesConfig, ShapesDiffusion,
                        digits_split, parse_prompt, shapes_to_model_space, shapes_to_pixel_space,
                        shapes_training_data,
                        to_model_space, to_pixel_space)
from .diffusion_eval import evaluate, evaluate_shapes
from .text_encoder import make_prompt, read_prompt

DEFAULT_STEPS = 1500
DEFAULT_CHECKPOINT = runs_path("diffusion.npz")
SHAPES_CHECKPOINT = runs_path("diffusion_shapes.npz")
# the shapes model's training defaults (sized from a measured step time: ~15 min on 2 cores)
SHAPES_DEFAULTS = dict(steps=3000, batch_size=32, lr=2e-3, minutes=15.0)
# the shapes model's guidance scale: w = 4 reads 91% objects / 96% colours, w = 2 83% / 89%
SHAPES_GUIDANCE = 4.0
# the prompts drawn in the periodic sample grids: the first of each pair is held out
GRID_PROMPTS = ["un pez rojo", "a red car", "una casa azul", "a blue flower", "un árbol morado",
                "a purple face", "un coche amarillo", "a yellow fish", "una flor cian",
                "a cyan house", "una cara verde", "a green tree",
                "a pink fish on a green background", "una casa naranja sobre fondo morado",
                "un pez rojo sobre fondo azul", "a yellow flower on a purple background"]


def train(steps=DEFAULT_STEPS, seed=0, batch_size=256, lr=2e-3, config=None, progress=True,
          ema_decay=0.995, device="cpu"):
    """Train a prompt-conditioned denoiser on the digits' training split; returns
    (Diffusion with EMA weights loaded, history of losses, seconds spent training). device:
    train there (model.to(device); the loss puts each batch beside the model); the model
    returned is on the CPU."""
    from tqdm.auto import tqdm

    manual_seed(seed)
    rng = np.random.default_rng(seed)
    xtr, ytr, _, _ = digits_split()
    x_all = to_model_space(xtr)
    y_all = np.asarray(ytr, np.int64)
    diff = Diffusion(config or DiffusionConfig())
    model = diff.model.to(device)
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = optim.lr_scheduler.warmup_cosine(opt, warmup_iters=min(100, steps // 10),
                                             total_iters=steps, min_factor=0.05)
    ema = EMA(model, ema_decay)
    history = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="diffusion", disable=not progress, mininterval=0.5)
    for step in bar:
        idx = rng.integers(0, len(x_all), batch_size)
        loss = diff.loss(x_all[idx], y_all[idx], rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        ema.update()
        history.append(float(loss.item()))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-50:]):.4f}")
    seconds = time.perf_counter() - start
    model.load_state_dict(ema.state_dict(model))
    model.to("cpu")
    return diff, history, seconds


def batch_prompts(rng, obj, col, bg, bg_col=None, p_background=0.5, p_no_color=0.1,
                  p_bg_color=0.8):
    """One training prompt per image: Spanish or English at random, the background's texture
    named half the time and its colour (where it has a named one) 80% of the time, the
    object's colour left out 10% of the time (so each word is learned on its own)."""
    if bg_col is None:
        bg_col = np.full(len(obj), -1)
    return [make_prompt(rng, int(o), None if rng.random() < p_no_color else int(c),
                        int(b) if rng.random() < p_background else None,
                        bg_color=int(k) if k >= 0 and rng.random() < p_bg_color else None)
            for o, c, b, k in zip(obj, col, bg, bg_col)]


def train_shapes(steps=None, seed=0, batch_size=None, lr=None, config=None, progress=True,
                 minutes=None, n_train=10000, sample_every=500, sample_dir=None,
                 ema_decay=0.999, log=print, resume=None, snapshots=False):
    """Train the prompt-conditioned U-Net on the shapes; returns (ShapesDiffusion with EMA
    weights loaded, history of losses, seconds spent training, steps done). Stops at `steps`
    or after `minutes` of training, whichever comes first; every `sample_every` steps it writes
    a grid of GRID_PROMPTS (EMA weights) to sample_dir (None: no grids). resume: a
    ShapesDiffusion to go on training (its config replaces `config`; a fresh optimizer).
    snapshots: also save the EMA weights as a checkpoint next to each grid."""
    from tqdm.auto import tqdm

    steps = int(steps or SHAPES_DEFAULTS["steps"])
    batch_size = int(batch_size or SHAPES_DEFAULTS["batch_size"])
    lr = float(lr or SHAPES_DEFAULTS["lr"])
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = resume.config if resume is not None else (config or ShapesConfig())
    t0 = time.perf_counter()
    x_all, obj, col, bg, bg_col = shapes_training_data(n_train, seed, config)
    log(f"made {n_train} training images in {time.perf_counter() - t0:.1f} s (held out: "
        f"{config.holdout})")
    diff = resume if resume is not None else ShapesDiffusion(config)
    model = diff.model
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = min(200, steps // 10)
    ema = EMA(model, ema_decay)
    history = []
    start = time.perf_counter()
    sampling = 0.0          # seconds spent on the grids, not counted as training
    bar = tqdm(range(steps), desc="diffusion (shapes)", disable=not progress, mininterval=0.5)
    done = 0
    for step in bar:
        idx = rng.integers(0, len(x_all), batch_size)
        x0 = x_all[idx]
        flip = rng.random(batch_size) < 0.5          # mirror images: the prompts still hold
        x0[flip] = x0[flip, :, :, ::-1]
        ids = diff.tokenizer.encode(batch_prompts(rng, obj[idx], col[idx], bg[idx],
                                                  bg_col[idx]))
        # warmup, then a cosine over the run's progress: the larger of the share of steps done
        # and of the minutes spent, so a slow (loaded) machine still ends at a low rate
        elapsed = time.perf_counter() - start - sampling
        progress = max(step / steps, elapsed / (60 * minutes) if minutes else 0.0)
        factor = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr * factor * min(1.0, (step + 1) / max(warmup, 1))
        loss = diff.loss(np.ascontiguousarray(x0), ids, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if resume is None:   # short runs: a shorter memory
            ema.decay = min(ema_decay, (1 + step) / (10 + step))
        ema.update()
        history.append(float(loss.item()))
        done = step + 1
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-50:]):.4f}")
        if sample_dir and sample_every and (done % sample_every == 0 or done == steps):
            s0 = time.perf_counter()
            path = _shapes_grid(diff, ema, os.path.join(sample_dir, f"step{done:05d}.png"),
                                snapshot=snapshots, train_seconds=time.perf_counter() - start
                                - sampling, done=done)
            sampling += time.perf_counter() - s0
            bar.write(f"step {done}: loss {np.mean(history[-100:]):.4f}; wrote {path}")
        if minutes is not None and time.perf_counter() - start - sampling > minutes * 60:
            bar.write(f"stopped after {minutes:g} minutes, at step {done} of {steps}")
            break
    bar.close()
    seconds = time.perf_counter() - start - sampling
    model.load_state_dict(ema.state_dict(model))
    return diff, history, seconds, done


def _shapes_grid(diff, ema, path, seed=0, steps=20, snapshot=False, train_seconds=None,
                 done=None):
    """Sample GRID_PROMPTS with the EMA weights (the training weights are put back); with
    snapshot, also save those weights as a checkpoint beside the picture (.npz)."""
    live = {k: np.array(getattr(v, "_data", v)) for k, v in diff.model.state_dict().items()}
    diff.model.load_state_dict(ema.state_dict(diff.model))
    try:
        if snapshot:
            save_checkpoint(diff, os.path.splitext(path)[0] + ".npz", train_steps=done,
                            train_seconds=train_seconds)
        x = diff.sample(GRID_PROMPTS, guidance=SHAPES_GUIDANCE, sampler="ddim", steps=steps,
                        seed=seed)
    finally:
        diff.model.load_state_dict(live)
    _imsave_rgb(path, color_grid(shapes_to_pixel_space(x), cols=4))
    return path


def _load(path):
    """The Diffusion in a checkpoint; a missing file says how to make one."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist (make one with `fastnn "
                                f"train diffusion --out {path}`)")
    diff, _ = load_checkpoint(path, kind="diffusion")
    return diff


# ---------------------------------------------------------------- pictures
def _imsave(path, image):
    """A grayscale PNG (pixels 0..16, ink dark), by matplotlib.image.imsave (no pyplot)."""
    require("matplotlib", "writing PNG files")
    from matplotlib.image import imsave
    _make_folder(path)
    imsave(path, image, cmap="gray_r", vmin=0, vmax=16)


def _imsave_rgb(path, image):
    """An RGB PNG from (H, W, 3) in [0, 1]."""
    require("matplotlib", "writing PNG files")
    from matplotlib.image import imsave
    _make_folder(path)
    imsave(path, np.clip(image, 0, 1))


def color_grid(images, cols=None, scale=3, pad=2):
    """Tile (N, 3, h, w) images in [0, 1] into one (H, W, 3) picture, each pixel upscaled
    `scale` times, on white."""
    n, _, h, w = images.shape
    cols = cols or min(n, 8)
    rows = math.ceil(n / cols)
    big = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        big[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + c * (w + pad):pad + c * (w + pad) + w] = img.transpose(1, 2, 0)
    return np.kron(big, np.ones((scale, scale, 1), np.float32))


def read_init(path, diff, n):
    """--init: images in the model's space, n of them (one image is repeated). A .npy as
    `fastnn sample` writes it, or a PNG (any size; area-averaged or repeated to the model's)."""
    shapes = isinstance(diff, ShapesDiffusion)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--init {path!r} does not exist")
    if path.lower().endswith(".npy"):
        arr = np.load(path).astype(np.float32)
        want = (3, diff.config.image_size, diff.config.image_size) if shapes else (8, 8)
        if arr.shape == want:
            arr = arr[None]
        if arr.shape[1:] != want:
            raise ValueError(f"--init {path}: expected images of shape {want}, got {arr.shape}")
    else:
        require("matplotlib", "reading PNG files")
        from matplotlib.image import imread
        try:
            img = np.asarray(imread(path), np.float32)
        except Exception as e:   # matplotlib raises several kinds for a file that is no PNG
            raise ValueError(f"--init {path}: cannot read it as an image ({e})") from None
        if img.dtype.kind != "f" or img.max() > 1:
            img = img / 255.0
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = _resize(img[..., :3], diff.config.image_size if shapes else 8)
        if shapes:
            arr = img.transpose(2, 0, 1)[None]
        else:   # the lesson's digit PNGs are dark ink on white: pixels 16 * (1 - luminance)
            arr = (16.0 * (1.0 - img @ np.array([0.299, 0.587, 0.114], np.float32)))[None]
    if len(arr) == 1:
        arr = np.repeat(arr, n, axis=0)
    if len(arr) != n:
        raise ValueError(f"--init {path}: holds {len(arr)} images; give one, or --num {len(arr)}")
    return shapes_to_model_space(arr) if shapes else to_model_space(arr)


def _resize(img, size):
    """(H, W, 3) -> (size, size, 3): block means when H, W are multiples of size, else nearest."""
    h, w, _ = img.shape
    if h % size == 0 and w % size == 0:
        return img.reshape(size, h // size, size, w // size, 3).mean(axis=(1, 3))
    rows = (np.arange(size) * h // size)
    cols = (np.arange(size) * w // size)
    return img[rows][:, cols]


def _make_folder(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def output_paths(out):
    """(png path or None, npy path or None) for --out: X.png -> only the picture, X.npy -> only
    the array, anything else is a stem -> both."""
    low = out.lower()
    if low.endswith(".png"):
        return out, None
    if low.endswith(".npy"):
        return None, out
    return out + ".png", out + ".npy"


def _write(out, picture, array, rgb=False):
    """Write what --out asks for; returns the paths written. matplotlib is checked before this
    (see _check_outputs), so a missing package never comes after the sampling."""
    png, npy = output_paths(out)
    written = []
    if npy:
        _make_folder(npy)
        np.save(npy, array)
        written.append(npy)
    if png:
        (_imsave_rgb if rgb else _imsave)(png, picture())
        written.append(png)
    return written


def _check_outputs(out):
    if output_paths(out)[0]:
        require("matplotlib", "writing PNG files (--out X.npy writes only the array)")


def grid(images, cols=None, scale=8, pad=1):
    """Tile (N, h, w) pixel images into one picture, each pixel upscaled `scale` times."""
    n, h, w = images.shape
    cols = cols or min(n, 8)
    rows = math.ceil(n / cols)
    big = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        big[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return np.kron(big, np.ones((scale, scale), np.float32))


# ---------------------------------------------------------------- commands
def _train_parser():
    p = Parser(prog="fastnn train diffusion",
               description="Train a prompt-conditioned DDPM denoiser and save it: on\n"
                           "scikit-learn's 8x8 digits (the default, about 35 s on 2 cores),\n"
                           "or with --data shapes a conv U-Net with a trained text encoder on\n"
                           "the 32x32 RGB shapes, prompts in Spanish or English (\"un pez rojo\",\n"
                           "\"a red fish\"), some object-colour pairs held out (about 15\n"
                           "minutes).\n\n"
                           "example: fastnn train diffusion --steps 1500 --out "
                           "runs/diffusion.npz\n"
                           "example: fastnn train diffusion --data shapes --out "
                           "runs/diffusion_shapes.npz")
    p.add_argument("--data", choices=["digits", "shapes"], default="digits")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"optimizer steps (default: digits {DEFAULT_STEPS}, shapes "
                        f"{SHAPES_DEFAULTS['steps']})")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"(default: digits 256, shapes {SHAPES_DEFAULTS['batch_size']})")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate (default: digits 2e-3, shapes "
                        f"{SHAPES_DEFAULTS['lr']:g})")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear",
                   help="the noise schedule")
    p.add_argument("--minutes", type=positive_float, default=None,
                   help=f"shapes: stop training after this long (default "
                        f"{SHAPES_DEFAULTS['minutes']:g})")
    p.add_argument("--n-train", type=positive_int, default=10000,
                   help="shapes: training images")
    p.add_argument("--channels", default="16,32,64,128",
                   help="shapes: U-Net widths per resolution (32x32, 16x16, ...), "
                        "comma-separated")
    p.add_argument("--attn", default=None, metavar="LEVELS",
                   help="shapes: U-Net levels (0 = 32x32, 1 = 16x16, 2 = 8x8, 3 = 4x4) where "
                        "pixels attend over each other and the prompt's words ('' for none; "
                        "default: the bottom level, the cheapest)")
    p.add_argument("--snapshots", action="store_true",
                   help="shapes: with each sample grid also save the EMA checkpoint there")
    p.add_argument("--prediction", choices=["eps", "v"], default="v",
                   help="shapes: the network predicts the noise (eps) or v")
    p.add_argument("--min-snr", type=finite_float, default=5.0,
                   help="shapes: min-SNR-gamma loss weighting, gamma (0: plain MSE)")
    p.add_argument("--snr-floor", type=finite_float, default=0.0, metavar="F",
                   help="shapes: with --min-snr, weigh each step's x0 error by clip(SNR, F, "
                        "gamma), not min(SNR, gamma), so the noisiest steps still teach (0: off; "
                        "F = 1 left visible noise in the samples after 750 steps)")
    p.add_argument("--bg-colors", type=finite_float, default=0.4, metavar="SHARE",
                   help="shapes: share of training images whose background has a named "
                        "colour (\"sobre fondo azul\")")
    p.add_argument("--backgrounds", default="plain", metavar="NAMES",
                   help="shapes: training backgrounds, comma-separated (plain, stripes, dots, "
                        "gradient; 'all': the four). Default plain: the prompts cannot describe "
                        "a texture's angle or spacing, so learning it spends the run on noise "
                        "the prompt does not control")
    p.add_argument("--t-bias", type=finite_float, default=0.0, metavar="B",
                   help="shapes: draw training steps with density (1+B) u^B over u = t/T, "
                        "more of the noisy steps that decide the layout (0: uniform)")
    p.add_argument("--holdout", default=ShapesConfig.holdout, metavar="CLASS:COLOUR,...",
                   help="shapes: object-colour pairs left out of training")
    p.add_argument("--resume", metavar="CKPT",
                   help="shapes: go on training this checkpoint's weights (its config wins; "
                        "default: a new model)")
    p.add_argument("--sample-every", type=nonnegative_int, default=500,
                   help="shapes: write a sample grid every N steps to OUT_samples/ (0: never)")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help=f"checkpoint to write (.npz); folders are created (with --data shapes "
                        f"and no --out: {SHAPES_CHECKPOINT})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_options(p)
    add_device_option(p)
    return p


def train_main(argv):
    args = _train_parser().parse_args(argv)
    setup_runtime(args)
    if args.data == "shapes" and args.device != "cpu":
        raise ValueError("--device: the shapes U-Net trains on the CPU only for now (its "
                         "convolutions have no device path yet); the digits model (--data "
                         "digits) trains on cuda")
    if args.data == "shapes":
        if not any(a == "--out" or a.startswith("--out=") for a in argv):
            args.out = SHAPES_CHECKPOINT      # never over the digits model's checkpoint
        return _train_shapes_main(args)
    require("sklearn", "the digits data")      # before any work, not after
    config = DiffusionConfig(schedule=args.schedule)
    steps = args.steps or DEFAULT_STEPS
    out = args.out
    diff, history, seconds = train(steps, args.seed, args.batch_size or 256, args.lr or 2e-3,
                                   config, progress=not args.no_progress, device=args.device)
    save_checkpoint(diff, out)
    print(f"trained {steps} steps in {seconds:.1f} s; final loss "
          f"{np.mean(history[-100:]):.4f}; saved {out}")
    return 0


def _train_shapes_main(args):
    out = args.out
    try:
        levels = len([int(c) for c in args.channels.split(",")])
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers, got "
                         f"{args.channels!r}") from None
    # no blocks at full resolution (the costly one), one at each level below
    blocks = ",".join(["0"] + ["1"] * (levels - 2))
    if args.attn is None:
        args.attn = str(levels - 1)
    if not 0.0 <= args.bg_colors <= 1.0:
        raise ValueError(f"--bg-colors must be in [0, 1], got {args.bg_colors}")
    backgrounds = "" if args.backgrounds.strip().lower() == "all" else args.backgrounds
    config = ShapesConfig(schedule=args.schedule, channels=args.channels, blocks=blocks,
                          holdout=args.holdout, attn=args.attn, prediction=args.prediction,
                          min_snr=args.min_snr, bg_colors=args.bg_colors,
                          backgrounds=backgrounds, t_bias=args.t_bias,
                          snr_floor=args.snr_floor)
    resume = _load(args.resume) if args.resume else None
    if resume is not None and not isinstance(resume, ShapesDiffusion):
        raise ValueError(f"--resume {args.resume}: a digits checkpoint, not a shapes one")
    if resume is None:
        ShapesDiffusion(config)   # a bad option fails now, not after the data is made
    config.holdout_pairs()
    config.background_ids()
    sample_dir = (os.path.splitext(out)[0] + "_samples") if args.sample_every else None
    minutes = args.minutes if args.minutes is not None else SHAPES_DEFAULTS["minutes"]
    diff, history, seconds, done = train_shapes(
        args.steps, args.seed, args.batch_size, args.lr, config, progress=not args.no_progress,
        minutes=minutes, n_train=args.n_train, sample_every=args.sample_every,
        sample_dir=sample_dir, resume=resume, snapshots=args.snapshots)
    save_checkpoint(diff, out, train_steps=done, train_seconds=seconds)
    print(f"trained {done} steps in {seconds:.1f} s; final loss {np.mean(history[-100:]):.4f}; "
          f"saved {out}")
    return 0


def _default_out(prompt, process):
    name = re.sub(r"[^\w.-]+", "_", prompt.strip()).strip("._") or "sample"
    return runs_path("samples", name + ("_process" if process else ""))


def _sample_parser():
    p = Parser(prog="fastnn sample", description=__doc__)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="a checkpoint from `fastnn train diffusion` (digits or shapes)")
    p.add_argument("--prompt", required=True,
                   help='digits: "7", "seven" or "siete"; shapes: an object, a colour and '
                        'optionally a background, Spanish or English ("un pez rojo", "a red '
                        'fish on a striped background")')
    p.add_argument("--num", type=positive_int, default=16, help="how many samples")
    p.add_argument("--guidance", type=finite_float, default=None,
                   help="classifier-free guidance w: eps = (1+w) eps(y) - w eps(null); 0 = none "
                        f"(default: digits 1, shapes {SHAPES_GUIDANCE:g})")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=positive_int, default=25,
                   help="DDIM steps (DDPM uses every step of the schedule)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--init", metavar="IMAGE",
                   help="img2img (SDEdit): start from this image (.png or .npy) noised part way "
                        "(default: from pure noise)")
    p.add_argument("--strength", type=finite_float, default=0.6,
                   help="with --init: how far to noise it, 0 (keep it) .. 1 (ignore it)")
    p.add_argument("--out", metavar="PATH",
                   help="X.png: the picture only; X.npy: the array only; a stem X: both "
                        "(default: runs/samples/PROMPT, or runs/samples/PROMPT_process)")
    p.add_argument("--show-process", action="store_true",
                   help="draw a strip instead: a real image (a digit; shapes: one matching "
                        "the prompt) noised step by step, then a sample denoised step by step")
    add_runtime_options(p)
    return p


def sample_main(argv):
    args = _sample_parser().parse_args(argv)
    setup_runtime(args)
    if not 0.0 <= args.strength <= 1.0:
        raise ValueError(f"--strength must be in [0, 1], got {args.strength}")
    out = args.out or _default_out(args.prompt, args.show_process)
    _check_outputs(out)
    # a prompt neither model understands fails before the checkpoint is read
    errors = []
    for parse in (parse_prompt, read_prompt):
        try:
            parse(args.prompt)
        except ValueError as e:
            errors.append(e)
    if len(errors) == 2 and not os.path.exists(args.checkpoint):
        raise errors[0]
    diff = _load(args.checkpoint)
    if isinstance(diff, ShapesDiffusion):
        return _sample_shapes(diff, args, out)
    label = parse_prompt(args.prompt)
    if args.guidance is None:
        args.guidance = 1.0
    guidance = args.guidance
    if args.show_process:
        require("sklearn", "--show-process (a real digit to noise)")
        return _show_process(diff, label, args, out)
    init = read_init(args.init, diff, args.num) if args.init else None
    t0 = time.perf_counter()
    x = diff.sample(np.full(args.num, label), guidance=guidance, sampler=args.sampler,
                    steps=args.steps, seed=args.seed, init=init, strength=args.strength)
    secs = time.perf_counter() - t0
    pixels = to_pixel_space(x)
    written = _write(out, lambda: grid(pixels), pixels)
    how = f" from {args.init} at strength {args.strength:g}" if init is not None else ""
    print(f"sampled {args.num} x {args.prompt!r} (digit {label}) with {args.sampler}{how} in "
          f"{secs:.2f} s; wrote {' and '.join(written)}")
    return 0


def _sample_shapes(diff, args, out):
    obj, col, bg, bg_col = read_prompt(args.prompt, bg_color=True)   # unknown words fail here
    guidance = SHAPES_GUIDANCE if args.guidance is None else args.guidance
    if args.show_process:
        if args.init:
            raise ValueError("--show-process starts from noise; it does not take --init")
        return _show_process_shapes(diff, args, out, (obj, col, bg, bg_col), guidance)
    init = read_init(args.init, diff, args.num) if args.init else None
    t0 = time.perf_counter()
    x = diff.sample([args.prompt] * args.num, guidance=guidance, sampler=args.sampler,
                    steps=args.steps, seed=args.seed, init=init, strength=args.strength)
    secs = time.perf_counter() - t0
    images = shapes_to_pixel_space(x)
    written = _write(out, lambda: color_grid(images), images, rgb=True)
    held = (obj, col) in set(diff.config.holdout_pairs())
    how = f" from {args.init} at strength {args.strength:g}" if init is not None else ""
    print(f"sampled {args.num} x {args.prompt!r}{' (a held-out combination)' if held else ''} "
          f"with {args.sampler}{how} in {secs:.2f} s; wrote {' and '.join(written)}")
    return 0


def _show_process(diff, label, args, out, frames=10):
    xtr, ytr, _, _ = digits_split()
    real = to_model_space(xtr[np.flatnonzero(ytr == label)[:1]])
    rng = np.random.default_rng(args.seed)
    T = diff.schedule.steps
    noise = rng.standard_normal(real.shape).astype(np.float32)
    ts = np.linspace(0, T - 1, frames).round().astype(int)
    noised = [real[0]] + [diff.schedule.q_sample(real, np.array([t]), noise)[0] for t in ts[1:]]
    _, path = diff.sample(np.array([label]), guidance=args.guidance, sampler=args.sampler,
                          steps=args.steps, seed=args.seed, trajectory=True)
    pick = np.linspace(0, len(path) - 1, frames).round().astype(int)
    denoised = [path[i][0] for i in pick]
    rows = np.stack([to_pixel_space(np.stack(noised)), to_pixel_space(np.stack(denoised))])
    written = _write(out, lambda: grid(rows.reshape(-1, 8, 8), cols=frames), rows)
    print(f"wrote {' and '.join(written)}: top row a real {label} noised over {T} steps, bottom "
          f"row a sample denoised by {args.sampler}")
    return 0


def _show_process_shapes(diff, args, out, parts, guidance, frames=10):
    """The shapes strip: a real image matching the prompt noised step by step (top row), then
    a sample for the prompt denoised step by step (bottom row: the DDIM states x_t)."""
    from ..data.shapes import make_shapes
    obj, col, bg, bg_col = parts
    if obj is None:
        raise ValueError(f"--show-process: the prompt {args.prompt!r} names no object; the top "
                         f"row shows a real one")
    real, _, _ = make_shapes(1, seed=args.seed, classes=[obj],
                             colors=None if col is None else [col],
                             backgrounds=None if bg is None else [bg],
                             bg_colors=None if bg_col is None else [bg_col], distractors=False)
    real = shapes_to_model_space(real)
    rng = np.random.default_rng(args.seed)
    T = diff.schedule.steps
    noise = rng.standard_normal(real.shape).astype(np.float32)
    ts = np.linspace(0, T - 1, frames).round().astype(int)
    noised = [real[0]] + [diff.schedule.q_sample(real, np.array([t]), noise)[0] for t in ts[1:]]
    _, path = diff.sample([args.prompt], guidance=guidance, sampler=args.sampler,
                          steps=args.steps, seed=args.seed, trajectory=True)
    pick = np.linspace(0, len(path) - 1, frames).round().astype(int)
    denoised = [path[i][0] for i in pick]
    rows = shapes_to_pixel_space(np.stack(noised + denoised))     # (2 * frames, 3, s, s)
    written = _write(out, lambda: color_grid(rows, cols=frames),
                     rows.reshape(2, frames, *rows.shape[1:]), rgb=True)
    print(f"wrote {' and '.join(written)}: top row a real image like {args.prompt!r} noised over "
          f"{T} steps, bottom row a sample denoised by {args.sampler}")
    return 0


def _eval_parser():
    p = Parser(prog="fastnn eval diffusion",
               description="How often samples read as the prompted digit (by a classifier\n"
                           "trained on the real digits), the Frechet distance to held-out real\n"
                           "digits, and the share of near-copies of training images, at each\n"
                           "guidance scale. For a shapes checkpoint, --cnn (a shapes CNN from\n"
                           "`fastnn train cnn --data shapes`, trained separately) judges the\n"
                           "object; the colour is read from the hue of the object's pixels;\n"
                           "held-out object-colour pairs are reported apart.\n\n"
                           "example: fastnn eval diffusion --checkpoint runs/diffusion.npz "
                           "--guidance 0,1,3\n"
                           "example: fastnn eval diffusion --checkpoint "
                           "runs/diffusion_shapes.npz --cnn runs/cnn_shapes.npz")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="a checkpoint from `fastnn train diffusion`")
    p.add_argument("--cnn", default=runs_path("cnn_shapes.npz"), metavar="PATH",
                   help="shapes: the judging CNN checkpoint")
    p.add_argument("--per-prompt", type=positive_int, default=None,
                   help="samples per prompt (default: digits 50, shapes 8 per object-colour pair)")
    p.add_argument("--guidance", type=number_list(finite_float), default=None,
                   metavar="W1,W2,...", help="comma-separated guidance scales (default: digits "
                   f"0,1,3; shapes {SHAPES_GUIDANCE:g})")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=positive_int, default=25, help="DDIM steps")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    add_runtime_options(p)
    return p


def eval_main(argv):
    args = _eval_parser().parse_args(argv)
    setup_runtime(args)
    if not os.path.exists(args.checkpoint):   # (the default is the digits model's)
        require("sklearn", "the digits data")
    diff = _load(args.checkpoint)
    if isinstance(diff, ShapesDiffusion):
        if not os.path.exists(args.cnn):
            raise FileNotFoundError(f"--cnn {args.cnn!r} does not exist (make one with `fastnn "
                                    f"train cnn --data shapes --out {args.cnn}`)")
        cnn, _ = load_checkpoint(args.cnn, kind="cnn")
        evaluate_shapes(diff, cnn, args.guidance or [SHAPES_GUIDANCE],
                        per_prompt=args.per_prompt or 8,
                        sampler=args.sampler, steps=args.steps, seed=args.seed, out=sys.stdout)
        return 0
    require("sklearn", "the digits data")
    evaluate(diff, args.guidance or [0.0, 1.0, 3.0], per_prompt=args.per_prompt or 50,
             sampler=args.sampler, steps=args.steps, seed=args.seed, out=sys.stdout)
    return 0
