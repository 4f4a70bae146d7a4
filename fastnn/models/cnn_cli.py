"""`fastnn train cnn` and `fastnn eval cnn`: the vision lesson's commands (the model and its
training are in cnn.py).

    fastnn train cnn                                  # the digits (8x8); writes runs/cnn.npz
    fastnn train cnn --data shapes --out runs/cnn_shapes.npz     # 32x32 RGB objects (~1-3 min)
    fastnn eval cnn --checkpoint runs/cnn.npz
    mpiexec -n 2 fastnn train cnn --distributed       # data-parallel over MPI (fastnn.distributed)

Options left unset take the data set's preset (fastnn.models.cnn.PRESETS, shown in --help). A
user mistake (a bad option or checkpoint, a missing optional package) raises; fastnn.cli prints
it as one line and exits with status 2.
"""
import time

from ..errors import require
from ..kernels import get_backend
from .checkpoint import load_checkpoint, save_checkpoint
from .cnn import DATASETS, PRESETS, load_image_data, train_cnn
from .common_cli import (Parser, RankStopped, abort_on_error, add_device_option,
                         add_distributed_option, add_runtime_options, agree, fraction,
                         nonnegative_float, nonnegative_int, positive_float, positive_int,
                         runs_path, setup_runtime, start_distributed)

DEFAULT_CHECKPOINT = runs_path("cnn.npz")


def _preset(name):
    """'digits 20, shapes 6': a setting's preset per data set, for --help."""
    def show(v):
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
    return ", ".join(f"{d} {show(PRESETS[d][name])}" for d in DATASETS)


def _train_parser():
    p = Parser(prog="fastnn train cnn",
               description="Train a small CNN (conv-bn-relu-maxpool stages, then a linear layer)\n"
                           "on scikit-learn's 8x8 digits or the 32x32 'shapes to objects' images,\n"
                           "report its held-out test accuracy and save a checkpoint.\n\n"
                           "example: fastnn train cnn --data shapes --out runs/cnn_shapes.npz")
    p.add_argument("--data", choices=DATASETS, default="digits",
                   help="digits: 8x8 grey digits, 10 classes; shapes: 32x32 RGB objects, "
                        "6 classes")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"passes over the data (default: {_preset('epochs')})")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"(default: {_preset('batch_size')})")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate of the one-cycle schedule (default: "
                        f"{_preset('lr')})")
    p.add_argument("--weight-decay", type=nonnegative_float, default=None,
                   help=f"AdamW's (default: {_preset('weight_decay')})")
    p.add_argument("--channels", type=positive_int, nargs="+", default=None, metavar="N",
                   help=f"width of each conv stage (default: {_preset('channels')})")
    p.add_argument("--dropout", type=fraction, default=None,
                   help=f"before the classifier (default: {_preset('dropout')})")
    p.add_argument("--n-train", type=positive_int, default=12000, metavar="N",
                   help="shapes: training images to generate")
    p.add_argument("--n-test", type=positive_int, default=3000, metavar="N",
                   help="shapes: held-out test images to generate")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="initialization, shuffling and the data (split or generation)")
    p.add_argument("--max-time", type=positive_float, default=None, metavar="SECONDS",
                   help=f"stop training after this many seconds (default: "
                        f"{_preset('max_time')})")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="checkpoint to write; folders are created")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="write a loss-curve PNG here, e.g. runs/cnn.png (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_options(p)
    add_device_option(p)
    add_distributed_option(p)
    return p


PROG = "fastnn train cnn"


def train_main(argv):
    args = _train_parser().parse_args(argv)
    setup_runtime(args)
    if args.distributed:
        rank, world = start_distributed(args, PROG)   # before any input is read: see agree()
        try:
            with abort_on_error(PROG):
                return _train_distributed(args, rank, world)
        except RankStopped:   # another rank failed, and says why
            return 2
    if args.data == "digits":
        require("sklearn", "the digits data")            # before any work, not after
    if not args.no_progress:
        require("tqdm", "the progress bar (or pass --no-progress)")
    if args.plot:
        require("matplotlib", "--plot")

    t0 = time.perf_counter()
    model, history, acc, info = train_cnn(
        args.data, args.epochs, args.batch_size, args.lr, args.weight_decay,
        tuple(args.channels) if args.channels else None, args.dropout, args.seed, args.max_time,
        not args.no_progress, args.plot, args.n_train, args.n_test, device=args.device)
    print(f"data {args.data}: {info['n_train']} training and {info['n_test']} test images of "
          f"{model.in_channels}x{model.image_size}x{model.image_size}, {model.num_classes} "
          f"classes (made in {info['data_seconds']:.2f} s)")
    print(f"model: CNN, stages {'-'.join(map(str, model.channels))}, "
          f"{model.num_parameters():,} parameters")
    print(f"backend {get_backend().name}, device {args.device}: {len(history['epoch'])} epochs "
          f"in {history['seconds'][-1]:.2f} s of training ({time.perf_counter() - t0:.2f} s "
          f"total)" + (" (stopped at --max-time)" if history["stopped_early"] else ""))
    print(f"final train loss {history['train_loss'][-1]:.4f}")
    print(f"test accuracy: {acc:.4f}")
    save_checkpoint(model, args.out, data=args.data, classes=list(info["classes"]),
                    seed=args.seed, n_test=info["n_test"], test_accuracy=acc,
                    train_seconds=info["train_seconds"])
    print(f"saved checkpoint to {args.out}")
    if args.plot:
        print(f"saved loss curve to {args.plot}")
    return 0


class _Shards:
    """This rank's share of every global batch of `batches` (each rank draws the same batches,
    shuffle and augmentation, from the same seed); a last batch that does not split evenly is
    cut to a multiple of the ranks."""

    def __init__(self, batches, rank, world):
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        from ..tensor import Tensor
        for x, y in self.batches:
            k = len(y._data) // self.world
            if k == 0:
                continue
            part = slice(self.rank * k, (self.rank + 1) * k)
            yield Tensor(x._data[part]), Tensor(y._data[part])


def _prepare_distributed(args, world):
    from .cnn import PRESETS as presets
    if args.data == "digits":
        require("sklearn", "the digits data")
    if not args.no_progress:
        require("tqdm", "the progress bar (or pass --no-progress)")
    if args.plot:
        require("matplotlib", "--plot")
    cfg = dict(presets[args.data])
    for k in ("epochs", "batch_size", "lr", "weight_decay", "dropout", "max_time"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.channels:
        cfg["channels"] = tuple(args.channels)
    if cfg["batch_size"] % world:
        raise ValueError(f"--batch-size {cfg['batch_size']} does not split evenly over {world} "
                         f"ranks (it is the global batch: make it a multiple of {world})")
    t0 = time.perf_counter()
    data = load_image_data(args.data, args.seed, args.n_train, args.n_test)
    return cfg, data, time.perf_counter() - t0


def _train_distributed(args, rank, world):
    """`fastnn train cnn --distributed`: train_cnn's recipe, data-parallel. Every rank draws
    the same global batches (seed --seed) and trains on its share through
    DistributedDataParallel; fit() averages the metrics and the time limit over the ranks.
    BatchNorm normalizes over each rank's share of the batch (as PyTorch's DDP without
    SyncBatchNorm), and its running statistics are rank 0's (broadcast at every forward), so
    R ranks train like, but not exactly as, one process. Rank 0 prints and writes the
    checkpoint."""
    import numpy as np
    from .. import distributed as dist
    from ..nn.parallel import DistributedDataParallel
    from ..optim import AdamW
    from ..optim.lr_scheduler import OneCycleLR
    from ..tensor import manual_seed
    from ..threads import get_num_threads
    from ..training import fit
    from .cnn import CNN, _Batches, _Eval

    cfg, (Xtr, ytr, Xte, yte, classes), data_seconds = agree(
        lambda: _prepare_distributed(args, world))
    main = rank == 0
    say = print if main else (lambda *a, **k: None)
    t0 = time.perf_counter()
    manual_seed(args.seed)
    model = CNN(Xtr.shape[1], Xtr.shape[-1], len(classes), cfg["channels"], cfg["dropout"])
    if rank:  # dropout masks of their own on the other ranks
        manual_seed(int(np.random.SeedSequence([args.seed, rank]).generate_state(1)[0]))
    net = DistributedDataParallel(model) if dist.is_initialized() else model
    opt = AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    train = _Shards(_Batches(Xtr, ytr, cfg["batch_size"], np.random.default_rng(args.seed),
                             cfg["shift"], cfg["flip"]), rank, world)
    sched = OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * len(train),
                       pct_start=0.2)
    say(f"data {args.data}: {len(ytr)} training and {len(yte)} test images of "
        f"{model.in_channels}x{model.image_size}x{model.image_size}, {model.num_classes} "
        f"classes (made in {data_seconds:.2f} s)")
    say(f"model: CNN, stages {'-'.join(map(str, model.channels))}, "
        f"{model.num_parameters():,} parameters; {world} rank(s) x {get_num_threads()} "
        f"thread(s), {cfg['batch_size'] // world} of each batch of {cfg['batch_size']} per rank",
        flush=True)
    history = fit(net, opt, train, epochs=cfg["epochs"], val_loader=_Eval(Xte, yte),
                  scheduler=sched, scheduler_interval="batch", max_time=cfg["max_time"],
                  progress=not args.no_progress, plot=args.plot)
    acc = model.accuracy(Xte, yte)
    say(f"backend {get_backend().name}: {len(history['epoch'])} epochs in "
        f"{history['seconds'][-1]:.2f} s of training ({time.perf_counter() - t0:.2f} s total)"
        + (" (stopped at --max-time)" if history["stopped_early"] else ""))
    say(f"final train loss {history['train_loss'][-1]:.4f}")
    say(f"test accuracy: {acc:.4f}")
    if main:
        save_checkpoint(model, args.out, data=args.data, classes=list(classes),
                        seed=args.seed, n_test=len(yte), test_accuracy=acc,
                        train_seconds=history["seconds"][-1])
    if dist.is_initialized():
        dist.barrier()   # no rank ends before the checkpoint is on disk
    say(f"saved checkpoint to {args.out}")
    if args.plot:
        say(f"saved loss curve to {args.plot}")
    dist.cleanup()
    return 0


def _eval_parser():
    p = Parser(prog="fastnn eval cnn",
               description="Reload a CNN checkpoint from `fastnn train cnn` and report its\n"
                           "accuracy on the held-out test images of the data it was trained on.\n\n"
                           "example: fastnn eval cnn --checkpoint runs/cnn.npz")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="data seed (default: the one stored in the checkpoint)")
    p.add_argument("--n-test", type=positive_int, default=None, metavar="N",
                   help="shapes: test images (default: the number stored in the checkpoint)")
    add_runtime_options(p)
    return p


def eval_main(argv):
    args = _eval_parser().parse_args(argv)
    setup_runtime(args)
    model, meta = load_checkpoint(args.checkpoint, kind="cnn")
    data = str(meta.get("data", "digits"))
    if data == "digits":
        require("sklearn", "the digits data")
    seed = args.seed if args.seed is not None else int(meta.get("seed", 0))
    n_test = args.n_test if args.n_test is not None else int(meta.get("n_test", 3000))
    _, _, X, y, classes = load_image_data(data, seed, n_train=0, n_test=n_test)
    if X.shape[1:] != (model.in_channels, model.image_size, model.image_size):
        raise ValueError(f"{args.checkpoint}: the model takes {model.in_channels}x"
                         f"{model.image_size}x{model.image_size} images, the {data} data are "
                         f"{'x'.join(map(str, X.shape[1:]))}")
    t0 = time.perf_counter()
    pred = model.predict(X)
    seconds = time.perf_counter() - t0
    acc = float((pred == y).mean())
    print(f"{args.checkpoint}: CNN, stages {'-'.join(map(str, model.channels))}, "
          f"{model.num_parameters():,} parameters, trained on {data}")
    print(f"{len(y)} test images in {seconds:.2f} s")
    per_class = ", ".join(f"{c} {float((pred[y == i] == i).mean()):.3f}"
                          for i, c in enumerate(classes) if (y == i).any())
    print(f"per class: {per_class}")
    print(f"test accuracy: {acc:.4f}")
    return 0
