"""`fastnn train diffusion`, `fastnn sample` and `fastnn eval diffusion`.

    fastnn train diffusion --out runs/diffusion.npz
    fastnn sample --checkpoint runs/diffusion.npz --prompt siete --num 16 --out seven
    fastnn sample --checkpoint runs/diffusion.npz --prompt 3 --show-process --out process
    fastnn eval diffusion --checkpoint runs/diffusion.npz
"""
import argparse
import math
import os
import sys
import time

import numpy as np

from .. import optim
from ..errors import require
from ..tensor import manual_seed
from .checkpoint import load_checkpoint, save_checkpoint
from .diffusion import (EMA, Diffusion, DiffusionConfig, digits_split, parse_prompt,
                        to_model_space, to_pixel_space)
from .diffusion_eval import evaluate

DEFAULT_STEPS = 1500


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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    imsave(path, image, cmap="gray_r", vmin=0, vmax=16)


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


def _stem(out):
    return out[:-4] if out.endswith((".png", ".npy")) else out


# ---------------------------------------------------------------- commands
def train_main(argv):
    p = argparse.ArgumentParser(prog="fastnn train diffusion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    p.add_argument("--out", required=True, help="checkpoint path (.npz)")
    args = p.parse_args(argv)
    if args.steps < 1:
        raise ValueError("--steps must be >= 1")
    config = DiffusionConfig(schedule=args.schedule)
    diff, history, seconds = train(args.steps, args.seed, args.batch_size, args.lr, config)
    save_checkpoint(diff, args.out)
    print(f"trained {args.steps} steps in {seconds:.1f} s; final loss "
          f"{np.mean(history[-100:]):.4f}; saved {args.out}")
    return 0


def sample_main(argv):
    p = argparse.ArgumentParser(prog="fastnn sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", required=True, help='a digit: "7", "seven" or "siete"')
    p.add_argument("--num", type=int, default=16)
    p.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance w: eps = (1+w) eps(y) - w eps(null); 0 = none")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps (DDPM uses every step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="writes OUT.png (grid) and OUT.npy (N, 8, 8)")
    p.add_argument("--show-process", action="store_true",
                   help="write OUT.png as a strip: a real digit noised step by step, then a "
                        "sample denoised step by step")
    args = p.parse_args(argv)
    label = parse_prompt(args.prompt)
    if args.num < 1:
        raise ValueError("--num must be >= 1")
    diff = _load(args.checkpoint)
    stem = _stem(args.out)
    if args.show_process:
        return _show_process(diff, label, args, stem)
    t0 = time.perf_counter()
    x = diff.sample(np.full(args.num, label), guidance=args.guidance, sampler=args.sampler,
                    steps=args.steps, seed=args.seed)
    secs = time.perf_counter() - t0
    pixels = to_pixel_space(x)
    np.save(stem + ".npy", pixels)
    _imsave(stem + ".png", grid(pixels))
    print(f"sampled {args.num} x {args.prompt!r} (digit {label}) with {args.sampler} in "
          f"{secs:.2f} s; wrote {stem}.png and {stem}.npy")
    return 0


def _show_process(diff, label, args, stem, frames=10):
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
    _imsave(stem + ".png", grid(rows.reshape(-1, 8, 8), cols=frames))
    np.save(stem + ".npy", rows)
    print(f"wrote {stem}.png: top row a real {label} noised over {T} steps, bottom row a sample "
          f"denoised by {args.sampler}")
    return 0


def eval_main(argv):
    p = argparse.ArgumentParser(prog="fastnn eval diffusion")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--per-prompt", type=int, default=50, help="samples per digit")
    p.add_argument("--guidance", default="0,1,3", help="comma-separated guidance scales")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddim")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        scales = [float(s) for s in args.guidance.split(",")]
    except ValueError:
        raise ValueError(f"--guidance: expected comma-separated numbers, got "
                         f"{args.guidance!r}") from None
    diff = _load(args.checkpoint)
    evaluate(diff, scales, per_prompt=args.per_prompt, sampler=args.sampler, steps=args.steps,
             seed=args.seed, out=sys.stdout)
    return 0
