"""`fastnn style`: neural style transfer (Gatys et al.) of a photograph, with a feature network
that needs no download (fastnn/models/style.py says why random weights work).

    fastnn style                                          # scikit-learn's two photographs
    fastnn style --content me.jpg --style painting.jpg --out runs/me_painted.png --show-process
    fastnn style --features runs/cnn_shapes.npz           # the shapes CNN's features instead

A user mistake (a missing or unreadable image, a bad size, a checkpoint that holds no CNN)
raises; fastnn.cli prints it as one line and exits with status 2.
"""
import os
import time

import numpy as np

from ..errors import require
from ..serialization import CheckpointError
from .common_cli import (Parser, add_runtime_options, nonnegative_float, nonnegative_int,
                         positive_int, runs_path, setup_runtime)
from .style import DEFAULT_CHANNELS, OPTIMIZERS, CNNFeatures, RandomFeatures, StyleObjective, \
    transfer

DEFAULT_OUT = runs_path("style.png")
DEFAULT_STYLE_WEIGHT = 10.0
MIN_SIZE = 16
MAX_SIZE = 2048


def _parser():
    p = Parser(prog="fastnn style",
               description="Neural style transfer (Gatys et al. 2016): optimize the pixels of an\n"
                           "image so that its deep conv features match the content image's and\n"
                           "the correlations of its features (Gram matrices, at several scales)\n"
                           "match the style image's. The feature network is a pyramid of random\n"
                           "convolutions (no download), or a CNN checkpoint (--features).\n"
                           "Images: PNG or JPEG files, or sample:china / sample:flower\n"
                           "(scikit-learn's photographs).\n\n"
                           "example: fastnn style --content sample:china --style sample:flower "
                           "--out runs/style.png --show-process")
    p.add_argument("--content", default="sample:china", metavar="IMAGE",
                   help="the photograph whose layout is kept")
    p.add_argument("--style", default="sample:flower", metavar="IMAGE",
                   help="the image whose colours and textures are taken")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="OUT.png",
                   help="where the result goes (.png or .jpg)")
    p.add_argument("--size", type=positive_int, default=256, metavar="PIXELS",
                   help=f"side of the square output (the centre squares of both images, "
                        f"resized), {MIN_SIZE} to {MAX_SIZE}")
    p.add_argument("--steps", type=nonnegative_int, default=300, metavar="N",
                   help="loss-and-gradient evaluations (L-BFGS's line search counts)")
    p.add_argument("--style-weight", type=nonnegative_float, default=DEFAULT_STYLE_WEIGHT,
                   metavar="W", help="weight of the style loss against the content loss (both "
                                     "are relative errors, 1 = as far as a blank image)")
    p.add_argument("--content-weight", type=nonnegative_float, default=1.0, metavar="W")
    p.add_argument("--tv-weight", type=nonnegative_float, default=0.0, metavar="W",
                   help="weight of the total-variation (smoothness) loss")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs",
                   help="lbfgs (strong-Wolfe line search) or adam")
    p.add_argument("--lr", type=nonnegative_float, default=None,
                   help="step size (default: 1 for lbfgs, 0.02 for adam)")
    p.add_argument("--init", choices=("content", "noise"), default="content",
                   help="start from the content image or from noise")
    p.add_argument("--features", default="random", metavar="random|CKPT",
                   help="the feature network: random (a pyramid of random convolutions) or a "
                        "CNN checkpoint from `fastnn train cnn --data shapes`")
    p.add_argument("--channels", default=",".join(map(str, DEFAULT_CHANNELS)), metavar="C1,C2,..",
                   help="widths of the random network's levels")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of the random weights (and of --init noise)")
    p.add_argument("--show-process", action="store_true",
                   help="also write OUT_process.png: a strip of intermediate results")
    p.add_argument("--frames", type=positive_int, default=6, metavar="K",
                   help="pictures in the --show-process strip (the start and the end included)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_options(p)
    return p


def _channels(text):
    try:
        ch = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        ch = ()
    if not ch or min(ch) < 1:
        raise ValueError(f"--channels must be comma-separated positive widths, got {text!r}")
    return ch


def feature_network(spec, channels=DEFAULT_CHANNELS, seed=0):
    """(network, description) for --features: "random" or a CNN checkpoint path."""
    if spec == "random":
        return (RandomFeatures(channels, seed=seed),
                f"random features (levels of {', '.join(map(str, channels))} channels, "
                f"seed {seed})")
    from .checkpoint import load_checkpoint
    if not os.path.exists(spec):
        raise FileNotFoundError(f"--features: no such checkpoint {spec!r} (pass random, or a "
                                f"checkpoint from `fastnn train cnn --data shapes`)")
    model, meta = load_checkpoint(spec)
    try:
        net = CNNFeatures(model)
    except ValueError:
        raise CheckpointError(f"{spec} holds a {meta.get('kind', 'non-CNN')} model; --features "
                              f"needs a CNN (from `fastnn train cnn`)") from None
    if net.in_channels != 3:
        raise CheckpointError(f"{spec} holds a CNN for {net.in_channels}-channel images; style "
                              f"transfer needs an RGB one (fastnn train cnn --data shapes)")
    return net, f"the CNN of {spec} (stages of {', '.join(map(str, net.channels))} channels)"


def frame_steps(steps, frames):
    """The evaluations at which --show-process keeps a picture: 0 (the start), the end, and
    between them spaced on a square-root scale (the early steps change the image most)."""
    if steps == 0 or frames < 2:
        return [steps]
    return sorted({int(round(steps * (i / (frames - 1)) ** 2)) for i in range(frames)})


def run_style(args, log=print):
    """The command's work: returns a dict of measured figures (losses, seconds, paths)."""
    from ..data import load_image, save_image
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        raise ValueError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got "
                         f"{args.size}")
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--out must end in .png or .jpg, got {args.out!r}")
    content = load_image(args.content, size=args.size)
    style = load_image(args.style, size=args.size)
    net, what = feature_network(args.features, _channels(args.channels), args.seed)
    obj = StyleObjective(net, content, style, style_weight=args.style_weight,
                         content_weight=args.content_weight, tv_weight=args.tv_weight)
    at_content, at_style = obj.measure(content), obj.measure(style)
    log(f"{args.size}x{args.size}, {what}; {args.optimizer}, {args.steps} steps, style weight "
        f"{args.style_weight:g}")
    log(f"the content image itself: style loss {at_content['style']:.4g}; the style image "
        f"itself: content loss {at_style['content']:.4g}")

    keep = set(frame_steps(args.steps, args.frames)) if args.show_process else set()
    frames = {0: content.copy()} if 0 in keep else {}
    bar = None
    if not args.no_progress:
        require("tqdm", "the progress bar (or pass --no-progress)")
        from tqdm.auto import tqdm
        bar = tqdm(total=args.steps, desc="style", mininterval=0.5, dynamic_ncols=True)

    def callback(step, losses, image):
        if step in keep:
            frames[step] = np.clip(image, 0, 1).copy()
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"content {losses['content']:.3g}  style {losses['style']:.3g}",
                                refresh=False)

    t0 = time.perf_counter()
    try:
        result, history = transfer(obj, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                                   init=args.init, seed=args.seed, callback=callback)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    final = obj.measure(result)
    paths = {"out": save_image(args.out, result)}
    drop = at_content["style"] / final["style"] if final["style"] > 0 else float("inf")
    log(f"result: content loss {final['content']:.4g} (the style image scores "
        f"{at_style['content']:.4g}), style loss {final['style']:.4g} ({drop:.1f}x below the "
        f"content image's); {len(history)} evaluations in {seconds:.1f} s")
    if args.show_process:
        frames[max(keep)] = result
        paths["process"] = _write_strip(args.out, frames, style)
    log("wrote " + ", ".join(paths.values()))
    return {"at_content": at_content, "at_style": at_style, "final": final, "seconds": seconds,
            "evaluations": len(history), "style_drop": drop, "paths": paths}


def _write_strip(out, frames, style):
    """OUT_process.png: the style image, then the result at each kept step."""
    require("matplotlib", "fastnn style --show-process (its strip)")
    from .. import viz
    root, _ = os.path.splitext(out)
    path = root + "_process.png"
    steps = sorted(frames)
    images = [style] + [frames[s] for s in steps]
    titles = ["style"] + [("start" if s == 0 else f"step {s}") for s in steps]
    viz.image_grid(images, titles=titles, ncols=len(images), path=path, tile=1.6,
                   title="style transfer, step by step")
    return path


def main(argv):
    args = _parser().parse_args(argv)
    setup_runtime(args)
    run_style(args)
    return 0
