"""`fastnn train mlp` and `fastnn eval mlp`: the digits lesson's commands (the model and its
training are in mlp.py).

    fastnn train mlp                                 # writes runs/mlp.npz
    fastnn train mlp --epochs 60 --plot runs/mlp.png
    fastnn eval mlp --checkpoint runs/mlp.npz
    mpiexec -n 2 fastnn train mlp --distributed      # data-parallel over MPI (fastnn.distributed)

A user mistake (a bad option or checkpoint, a missing optional package) raises; fastnn.cli prints
it as one line and exits with status 2.
"""
import time

import numpy as np

from ..data import DataLoader, TensorDataset, load_digits
from ..errors import UsageError, require
from ..kernels import get_backend
from ..threads import get_num_threads
from .checkpoint import load_checkpoint, save_checkpoint
from .mlp import MLP, train_digits
from .common_cli import (Parser, RankStopped, abort_on_error, add_distributed_option,
                         add_device_option, add_runtime_options, agree, fraction,
                         nonnegative_float, nonnegative_int, positive_float, positive_int,
                         runs_path, setup_runtime, start_distributed)

DEFAULT_CHECKPOINT = runs_path("mlp.npz")


def _train_parser():
    p = Parser(prog="fastnn train mlp",
               description="Train an MLP on scikit-learn's 8x8 digits (AdamW, dropout, a cosine\n"
                           "schedule), report its test accuracy and save a checkpoint.\n\n"
                           "example: fastnn train mlp --epochs 60 --plot runs/mlp.png")
    p.add_argument("--epochs", type=positive_int, default=60, help="passes over the data")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate")
    p.add_argument("--weight-decay", type=nonnegative_float, default=1e-2)
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[256, 256], metavar="N",
                   help="hidden layer sizes")
    p.add_argument("--dropout", type=fraction, default=0.3)
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="initialization, shuffling and the data split")
    p.add_argument("--max-time", type=positive_float, default=10.0, metavar="SECONDS",
                   help="stop training after this many seconds")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="checkpoint to write; folders are created")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="write a loss-curve PNG here, e.g. runs/mlp.png (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_runtime_options(p)
    add_device_option(p)
    add_distributed_option(p)
    return p


PROG = "fastnn train mlp"


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
    require("sklearn", "the digits data")             # before any work, not after
    if args.plot:
        require("matplotlib", "--plot")

    t0 = time.perf_counter()
    model, history, acc, _ = train_digits(args.epochs, args.batch_size, args.lr,
                                          args.weight_decay, tuple(args.hidden), args.dropout,
                                          args.seed, args.max_time, not args.no_progress,
                                          args.plot, args.device)
    print(f"backend {get_backend().name}, device {args.device}: {len(history['epoch'])} epochs "
          f"in {history['seconds'][-1]:.2f} s of training ({time.perf_counter() - t0:.2f} s "
          f"total)" + (" (stopped at --max-time)" if history["stopped_early"] else ""))
    print(f"final train loss {history['train_loss'][-1]:.4f}")
    print(f"test accuracy: {acc:.4f}")
    save_checkpoint(model, args.out, test_accuracy=acc, seed=args.seed)
    print(f"saved checkpoint to {args.out}")
    if args.plot:
        print(f"saved loss curve to {args.plot}")
    return 0


def _check_distributed(args, world):
    require("sklearn", "the digits data")
    if args.plot:
        require("matplotlib", "--plot")
    if args.batch_size % world:
        raise UsageError(f"--batch-size {args.batch_size} does not split evenly over {world} "
                         f"ranks (it is the global batch: make it a multiple of {world})")
    return load_digits(seed=args.seed)


def _train_distributed(args, rank, world):
    """`fastnn train mlp --distributed`: train_digits' recipe, data-parallel. Every rank builds
    the same model (DistributedDataParallel broadcasts rank 0's anyway), takes its share of each
    global batch of --batch-size through a DistributedSampler (the same shuffle on every rank:
    seed --seed + epoch), and fit() averages the gradients, the metrics and the time limit over
    the ranks. Without dropout, R ranks end where one process (`--distributed` without mpiexec)
    ends, up to float32 rounding. Rank 0 prints and writes the checkpoint."""
    from .. import distributed as dist
    from ..nn.parallel import DistributedDataParallel
    from ..optim import AdamW
    from ..optim.lr_scheduler import CosineAnnealingLR
    from ..tensor import manual_seed
    from ..training import fit
    from ..utils.data import DistributedSampler

    d = agree(lambda: _check_distributed(args, world))
    main = rank == 0
    t0 = time.perf_counter()
    manual_seed(args.seed)
    model = MLP((d.X_train.shape[1],) + tuple(args.hidden) + (10,), dropout=args.dropout)
    if rank:  # dropout masks of their own on the other ranks
        manual_seed(int(np.random.SeedSequence([args.seed, rank]).generate_state(1)[0]))
    net = DistributedDataParallel(model) if dist.is_initialized() else model
    opt = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    data = TensorDataset(d.X_train, d.y_train)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True,
                                 seed=args.seed)
    train = DataLoader(data, batch_size=args.batch_size // world, sampler=sampler)
    test = DataLoader((d.X_test, d.y_test), batch_size=512)   # every rank: all of it
    sched = CosineAnnealingLR(opt, T_max=args.epochs * len(train))
    say = print if main else (lambda *a, **k: None)
    say(f"MLP {'-'.join(map(str, model.sizes))} on {len(data)} digits: {world} rank(s) x "
        f"{get_num_threads()} thread(s), {args.batch_size // world} of each batch of "
        f"{args.batch_size} per rank", flush=True)
    history = fit(net, opt, train, epochs=args.epochs, val_loader=test, scheduler=sched,
                  scheduler_interval="batch", max_time=args.max_time,
                  progress=not args.no_progress, plot=args.plot)
    acc = model.accuracy(d.X_test, d.y_test)
    say(f"backend {get_backend().name}: {len(history['epoch'])} epochs in "
        f"{history['seconds'][-1]:.2f} s of training ({time.perf_counter() - t0:.2f} s total)"
        + (" (stopped at --max-time)" if history["stopped_early"] else ""))
    say(f"final train loss {history['train_loss'][-1]:.4f}")
    say(f"test accuracy: {acc:.4f}")
    if main:
        save_checkpoint(model, args.out, test_accuracy=acc, seed=args.seed)
    if dist.is_initialized():
        dist.barrier()   # no rank ends before the checkpoint is on disk
    say(f"saved checkpoint to {args.out}")
    if args.plot:
        say(f"saved loss curve to {args.plot}")
    dist.cleanup()
    return 0


def _eval_parser():
    p = Parser(prog="fastnn eval mlp",
               description="Reload an MLP checkpoint from `fastnn train mlp` and report its\n"
                           "accuracy on the digits' test split.\n\n"
                           "example: fastnn eval mlp --checkpoint runs/mlp.npz")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="data split seed (default: the one stored in the checkpoint)")
    add_runtime_options(p)
    return p


def eval_main(argv):
    args = _eval_parser().parse_args(argv)
    setup_runtime(args)
    require("sklearn", "the digits data")
    model, meta = load_checkpoint(args.checkpoint, kind="mlp")
    seed = args.seed if args.seed is not None else int(meta.get("seed", 0))
    d = load_digits(seed=seed)
    acc = model.accuracy(d.X_test, d.y_test)
    print(f"{args.checkpoint}: MLP {'-'.join(map(str, model.sizes))}, "
          f"{model.num_parameters():,} parameters")
    print(f"test accuracy: {acc:.4f}")
    return 0
