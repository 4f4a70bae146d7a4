"""`fastnn train diffusion`, `fastnn sample` and `fastnn eval diffusion`.

    fastnn train diffusion                             # writes runs/diffusion.npz
    fastnn sample --prompt siete                       # runs/samples/siete.png and .npy
    fastnn sample --prompt siete --num 16 --out seven  # seven.png and seven.npy
    fastnn sample --prompt 3 --out runs/three.npy      # only the array
    fastnn sample --prompt 3 --show-process            # runs/samples/3_process.png and .npy
    fastnn eval diffusion --checkpoint runs/diffusion.npz

--out: a path ending in .png writes only the picture, one ending in .npy only the array
(N, 8, 8 pixels 0..16), anything else is a stem and gets both; folders are created.
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
from .common_cli import (Parser, add_runtime_options, finite_float, nonnegative_int, number_list,
                         positive_float, positive_int, runs_path, setup_runtime)
from .checkpoint import load_checkpoint, save_checkpoint
from .diffusion import (EMA, Diffusion, DiffusionConfig, digits_split, parse_prompt,
                        to_model_space, to_pixel_space)
from .diffusion_eval import evaluate

DEFAULT_STEPS = 1500
DEFAULT_CHECKPOINT = runs_path("diffusion.npz")


def train(steps=DEFAULT_STEPS, seed=0, batch_size=256, lr=2e-3, config=None, progress=True,
          ema_decay=0.995):
    """Train a prompt-conditioned denoiser on the digits' training split; returns
    (Diffusion with EMA weights loaded, history of losses, seconds spent training)."""
    from tqdm.auto import tqdm

    manual_seed(seed)
    rng = np.random.default_rng(seed)
    xtr, ytr, _, _ = digits_split()
    x_all = to_model_space(xtr)
    y_all = np.asarray(ytr, np.int64)
    diff = Diffusion(config or DiffusionConfig())
    model = diff.model
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
    return diff, history, seconds


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


def _write(out, picture, array):
    """Write what --out asks for; returns the paths written. matplotlib is checked before this
    (see _check_outputs), so a missing package never comes after the sampling."""
    png, npy = output_paths(out)
    written = []
    if npy:
        _make_folder(npy)
        np.save(npy, array)
        written.append(npy)
    if png:
        _imsave(png, picture())
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
               description="Train a prompt-conditioned DDPM denoiser on scikit-learn's 8x8\n"
                           "digits (about 2 minutes on 2 cores at the defaults) and save it.\n\n"
                           "example: fastnn train diffusion --steps 1500 --out "
                           "runs/diffusion.npz")
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS, help="optimizer steps")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear",
                   help="the noise schedule")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="checkpoint to write (.npz); folders are created")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_options(p)
    return p


def train_main(argv):
    args = _train_parser().parse_args(argv)
    setup_runtime(args)
    require("sklearn", "the digits data")      # before any work, not after
    config = DiffusionConfig(schedule=args.schedule)
    diff, history, seconds = train(args.steps, args.seed, args.batch_size, args.lr, config,
                                   progress=not args.no_progress)
    save_checkpoint(diff, args.out)
    print(f"trained {args.steps} steps in {seconds:.1f} s; final loss "
          f"{np.mean(history[-100:]):.4f}; saved {args.out}")
    return 0


def _default_out(prompt, process):
    name = re.sub(r"[^\w.-]+", "_", prompt.strip()).strip("._") or "sample"
    return runs_path("samples", name + ("_process" if process else ""))


def _sample_parser():
    p = Parser(prog="fastnn sample", description=__doc__)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="a checkpoint from `fastnn train diffusion`")
    p.add_argument("--prompt", required=True, help='a digit: "7", "seven" or "siete"')
    p.add_argument("--num", type=positive_int, default=16, help="how many samples")
    p.add_argument("--guidance", type=finite_float, default=1.0,
                   help="classifier-free guidance w: eps = (1+w) eps(y) - w eps(null); 0 = none")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=positive_int, default=25,
                   help="DDIM steps (DDPM uses every step of the schedule)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", metavar="PATH",
                   help="X.png: the picture only; X.npy: the array (N, 8, 8) only; a stem X: "
                        "both (default: runs/samples/PROMPT, or runs/samples/PROMPT_process)")
    p.add_argument("--show-process", action="store_true",
                   help="draw a strip instead: a real digit noised step by step, then a "
                        "sample denoised step by step")
    add_runtime_options(p)
    return p


def sample_main(argv):
    args = _sample_parser().parse_args(argv)
    setup_runtime(args)
    label = parse_prompt(args.prompt)
    out = args.out or _default_out(args.prompt, args.show_process)
    _check_outputs(out)
    if args.show_process:
        require("sklearn", "--show-process (a real digit to noise)")
    diff = _load(args.checkpoint)
    if args.show_process:
        return _show_process(diff, label, args, out)
    t0 = time.perf_counter()
    x = diff.sample(np.full(args.num, label), guidance=args.guidance, sampler=args.sampler,
                    steps=args.steps, seed=args.seed)
    secs = time.perf_counter() - t0
    pixels = to_pixel_space(x)
    written = _write(out, lambda: grid(pixels), pixels)
    print(f"sampled {args.num} x {args.prompt!r} (digit {label}) with {args.sampler} in "
          f"{secs:.2f} s; wrote {' and '.join(written)}")
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


def _eval_parser():
    p = Parser(prog="fastnn eval diffusion",
               description="How often samples read as the prompted digit (by a classifier\n"
                           "trained on the real digits), the Frechet distance to held-out real\n"
                           "digits, and the share of near-copies of training images, at each\n"
                           "guidance scale.\n\n"
                           "example: fastnn eval diffusion --checkpoint runs/diffusion.npz "
                           "--guidance 0,1,3")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="a checkpoint from `fastnn train diffusion`")
    p.add_argument("--per-prompt", type=positive_int, default=50, help="samples per digit")
    p.add_argument("--guidance", type=number_list(finite_float), default=[0.0, 1.0, 3.0],
                   metavar="W1,W2,...", help="comma-separated guidance scales")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=positive_int, default=25, help="DDIM steps")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    add_runtime_options(p)
    return p


def eval_main(argv):
    args = _eval_parser().parse_args(argv)
    setup_runtime(args)
    require("sklearn", "the digits data")
    diff = _load(args.checkpoint)
    evaluate(diff, args.guidance, per_prompt=args.per_prompt, sampler=args.sampler,
             steps=args.steps, seed=args.seed, out=sys.stdout)
    return 0
