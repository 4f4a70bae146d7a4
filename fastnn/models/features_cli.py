"""`fastnn features`: pictures of what each conv stage of a trained CNN learned, and the measured
version of the claim (linear probes per layer).

    fastnn train cnn --data shapes --out runs/cnn_shapes.npz
    fastnn features --checkpoint runs/cnn_shapes.npz --out runs/features

writes into --out:
    filters.png                 the first layer's filters (RGB tiles)
    feature_maps_<stage>.png    each stage's feature maps for a few held-out images
    maximize_<stage>.png        inputs that excite a sample of the stage's channels most
                                (gradient ascent on the input, with jitter, blur and clipping)
    top_images_<stage>.png      for the same channels, the training images exciting them most
    summary.png                 the stages side by side, left to right
    probes.json, probes.png     the probe table (also printed): per layer, the held-out accuracy
                                of a logistic regression on the layer's pooled activations

A user mistake (a bad option, a checkpoint that holds no CNN) raises; fastnn.cli prints it as
one line and exits with status 2.
"""
import json
import os
import time

import numpy as np

from ..errors import require
from ..serialization import CheckpointError
from .common_cli import (Parser, add_runtime_options, nonnegative_int, positive_int,
                         runs_path, setup_runtime)
from .features import (ConvStages, filter_structure, maximize_activation, pick_channels,
                       reinitialized, top_images)
from .probes import format_table, probe_features, run_probes, shapes_targets

DEFAULT_OUT = runs_path("features")
DATA = ("shapes", "digits")


def _parser():
    p = Parser(prog="fastnn features",
               description="Draw what each conv stage of a CNN checkpoint responds to (filters,\n"
                           "feature maps, inputs made to excite its channels, the training\n"
                           "images that excite them), and measure what each stage makes\n"
                           "linearly readable: object class, and primitive-level facts\n"
                           "(contains a circle, edge orientation, background texture, colour).\n\n"
                           "example: fastnn features --checkpoint runs/cnn_shapes.npz "
                           "--out runs/features")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a CNN checkpoint from `fastnn train cnn`")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="folder for the PNGs and probes.json; created")
    p.add_argument("--data", choices=DATA, default=None,
                   help="images to look at (default: the checkpoint's, else shapes for RGB "
                        "models and digits for one-channel ones)")
    p.add_argument("--images", type=positive_int, default=3000, metavar="N",
                   help="held-out images for the probes (2/3 fit, 1/3 scored)")
    p.add_argument("--top-images", type=positive_int, default=2000, metavar="N",
                   help="training images searched for the ones exciting each channel most")
    p.add_argument("--channels", type=positive_int, default=8, metavar="K",
                   help="channels drawn per stage")
    p.add_argument("--steps", type=nonnegative_int, default=128,
                   help="gradient-ascent steps of the activation maximization")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="data seed (default: the checkpoint's, else 0)")
    p.add_argument("--no-probes", action="store_true", help="skip the linear probes")
    p.add_argument("--no-control", action="store_true",
                   help="skip the control probes (the same network with fresh random weights)")
    add_runtime_options(p)
    return p


def _images(data, n, seed, split):
    """(images (n, C, H, W) float32, labels, attributes or None) of the chosen data."""
    if data == "shapes":
        from ..data.shapes import ShapesDataset
        ds = ShapesDataset(n, seed=seed, split="val" if split == "heldout" else "train")
        return ds.images, ds.labels, ds.attributes
    from ..data import load_digits
    d = load_digits(seed=seed)
    X, y = (d.X_test, d.y_test) if split == "heldout" else (d.X_train, d.y_train)
    return np.ascontiguousarray(X[:n].reshape(-1, 1, 8, 8)), y[:n], None


def write_features(model, out, data="shapes", n_images=3000, n_top=2000, channels=8, steps=128,
                   seed=0, probes=True, control=True, log=print):
    """Write the PNGs (and, with probes, probes.json / probes.png) for `model` into `out`.
    control: also probe the same architecture with fresh random weights (table["control"]).
    Returns a dict: paths (name -> file), table (the probe table or None), seconds (per part)."""
    require("matplotlib", "fastnn features (its figures)")
    if probes:
        require("sklearn", "fastnn features (the linear probes)")
    from .. import viz

    stages = ConvStages(model)
    os.makedirs(out, exist_ok=True)
    paths, seconds = {}, {}
    t = time.perf_counter()
    X_top, y_top, _ = _images(data, n_top, seed, "train")
    X, y, attrs = _images(data, n_images, seed, "heldout")
    size = X.shape[-1]
    if X.shape[1] != stages.in_channels:
        raise ValueError(f"the model takes {stages.in_channels}-channel images, the {data} "
                         f"images have {X.shape[1]}; pass --data")
    seconds["data"] = time.perf_counter() - t

    # the probes first: their pooled activations also pick the channels to draw
    t = time.perf_counter()
    feats = probe_features(stages, X)
    pooled_top = stages.pooled(X_top)
    seconds["activations"] = time.perf_counter() - t
    table = None
    if probes:
        t = time.perf_counter()
        targets = (shapes_targets(y, attrs) if attrs is not None else {"object class": y})
        table = run_probes(feats, targets, seed=seed)
        log(f"linear probes: held-out accuracy of a logistic regression on each layer's "
            f"pooled activations ({table['n_train']} images fit, {table['n_test']} scored)")
        log(format_table(table))
        if control:
            fresh = ConvStages(reinitialized(model, seed))
            ctrl = run_probes(probe_features(fresh, X), targets, seed=seed)
            table["control"] = ctrl
            log("control: the same network with fresh random weights (what training added is "
                "the difference)")
            log(format_table(ctrl))
        seconds["probes"] = time.perf_counter() - t
        w = stages.convs[0].weight
        fs = filter_structure(w)
        fs0 = filter_structure(reinitialized(model, seed + 1).state_dict()[
            _weight_key(model, stages.convs[0])]) if control else None
        table["filters"] = {k: fs[k] for k in ("flat", "ramp", "rest")}
        msg = (f"first-layer filters: {fs['flat']:.0%} of their squared weights is flat "
               f"(colour/brightness), {fs['ramp']:.0%} a linear ramp (an oriented edge), "
               f"{fs['rest']:.0%} finer structure")
        if fs0 is not None:
            table["filters"]["random_weights"] = {k: fs0[k] for k in ("flat", "ramp", "rest")}
            msg += (f"; with random weights {fs0['flat']:.0%}, {fs0['ramp']:.0%}, "
                    f"{fs0['rest']:.0%}")
        log(msg)
        paths["probes.json"] = os.path.join(out, "probes.json")
        with open(paths["probes.json"], "w") as f:
            json.dump(table, f, indent=1)
        paths["probes.png"] = os.path.join(out, "probes.png")
        viz.probe_bars(table, path=paths["probes.png"])

    t = time.perf_counter()
    w = np.asarray(stages.convs[0].weight._data)
    paths["filters.png"] = os.path.join(out, "filters.png")
    viz.filter_grid(w, path=paths["filters.png"],
                    title=f"{stages.names[0]}: the first layer's {len(w)} filters "
                          f"({w.shape[2]}x{w.shape[3]}, 0 = grey)")
    show = X[:4]
    maps = stages.activations(show, maps=True)
    for name, m in zip(stages.names, maps):
        key = f"feature_maps_{name}.png"
        paths[key] = os.path.join(out, key)
        viz.feature_map_grid(m, images=show, max_channels=12, path=paths[key],
                             title=f"{name}: feature maps ({m.shape[1]} channels, "
                                   f"{m.shape[2]}x{m.shape[3]}), first 12")
    seconds["maps"] = time.perf_counter() - t

    t = time.perf_counter()
    columns = []
    for k, name in enumerate(stages.names):
        chans = pick_channels(pooled_top[k], channels, y_top)
        best, a0, a1 = maximize_activation(stages, k, chans, size=size, steps=steps, seed=seed,
                                           jitter=1 if size < 16 else 2)
        log(f"{name}: activation maximization of channels {', '.join(map(str, chans))}: mean "
            f"activation {float(np.mean(a0)):.3g} (grey start) -> {float(np.mean(a1)):.3g}")
        key = f"maximize_{name}.png"
        paths[key] = os.path.join(out, key)
        viz.image_grid(best, titles=[f"ch {c}" for c in chans], ncols=min(8, len(chans)),
                       path=paths[key], title=f"{name}: inputs that excite each channel most "
                                              f"(gradient ascent, {steps} steps)")
        tops = top_images(pooled_top[k], chans, k=6)
        key = f"top_images_{name}.png"
        paths[key] = os.path.join(out, key)
        viz.image_grid([X_top[i] for row in tops for i in row],
                       titles=[f"ch {c}" if j == 0 else None for c in chans for j in range(6)],
                       ncols=6, path=paths[key],
                       title=f"{name}: the training images exciting each channel most")
        rows = []
        for r, c in enumerate(chans[:4]):
            row = ([viz.plots.filter_tiles(w[c:c + 1])[0]] if k == 0 else []) + [best[r]]
            rows.append(row + [X_top[i] for i in tops[r][:3]])
        sub = None
        if table is not None:
            acc = {tg: table["accuracy"][tg][table["layers"].index(name)]
                   for tg in table["targets"]}
            short = {"object class": "object", "contains circle": "circle",
                     "edge orientation": "edges", "background texture": "texture",
                     "object colour": "colour"}
            parts = [f"{short.get(tg, tg)} {a:.2f}" for tg, a in acc.items()]
            sub = "\n".join("  ".join(parts[i:i + 3]) for i in range(0, len(parts), 3))
        channels_k = pooled_top[k].shape[1]
        columns.append({"title": f"{name} ({channels_k} channels)", "subtitle": sub,
                        "rows": rows, "row_labels": [f"ch {c}" for c in chans[:4]],
                        "col_labels": (["filter"] if k == 0 else []) + ["max", "top 1",
                                                                        "top 2", "top 3"]})
    seconds["maximize"] = time.perf_counter() - t
    paths["summary.png"] = os.path.join(out, "summary.png")
    viz.layer_summary(columns, path=paths["summary.png"],
                      title="what each stage responds to, input side (left) to output side "
                            "(right)",
                      caption="rows: each stage's most class-selective channels. max: an input "
                              "made by gradient ascent to excite the channel; top: the training "
                              "images that excite it most. Numbers: held-out linear-probe "
                              "accuracy of the stage.")
    return {"paths": paths, "table": table, "seconds": seconds}


def _weight_key(model, conv):
    """The state-dict key of conv's weight inside model."""
    for name, m in model.named_modules():
        if m is conv:
            return f"{name}.weight" if name else "weight"
    raise ValueError("the first Conv2d is not a submodule of the model")


def main(argv):
    args = _parser().parse_args(argv)
    setup_runtime(args)
    require("matplotlib", "fastnn features (its figures)")
    if not args.no_probes:
        require("sklearn", "fastnn features (the linear probes)")
    from .checkpoint import load_checkpoint

    t0 = time.perf_counter()
    model, meta = load_checkpoint(args.checkpoint)
    try:
        stages = ConvStages(model)
    except ValueError:
        raise CheckpointError(f"{args.checkpoint} holds a {meta.get('kind', 'non-CNN')} model; "
                              f"fastnn features needs a CNN (write one with `fastnn train "
                              f"cnn`)") from None
    data = args.data or (str(meta["data"]) if "data" in meta else
                         ("digits" if stages.in_channels == 1 else "shapes"))
    if data == "digits":
        require("sklearn", "the digits data")
    seed = args.seed if args.seed is not None else int(meta.get("seed", 0))
    print(f"{args.checkpoint}: {len(stages)} conv stages ({', '.join(stages.names)}); "
          f"looking at {data} images (seed {seed})")
    res = write_features(model, args.out, data=data, n_images=args.images,
                         n_top=args.top_images, channels=args.channels, steps=args.steps,
                         seed=seed, probes=not args.no_probes, control=not args.no_control)
    s = res["seconds"]
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items())
          + f"; total {time.perf_counter() - t0:.1f}")
    print(f"wrote {len(res['paths'])} files to {args.out}: "
          + ", ".join(sorted(os.path.basename(p) for p in res["paths"].values())))
    return 0
