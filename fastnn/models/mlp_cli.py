"""`fastnn train mlp` and `fastnn eval mlp`: the digits lesson's commands (the model and its
training are in mlp.py).

    fastnn train mlp --epochs 60 --out runs/mlp.npz --plot runs/mlp.png
    fastnn eval mlp --checkpoint runs/mlp.npz

A user mistake (a bad checkpoint, a missing optional package) raises; fastnn.cli prints it as one
line and exits with status 2.
"""
import argparse
import os
import time

from ..kernels import get_backend, set_backend
from ..data import load_digits
from ..errors import require
from .checkpoint import load_checkpoint, save_checkpoint
from .mlp import train_digits

DEFAULT_CHECKPOINT = os.path.join("runs", "mlp.npz")


def train_main(argv):
    p = argparse.ArgumentParser(prog="fastnn train mlp",
                                description="Train an MLP on scikit-learn's 8x8 digits.")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                   help="hidden layer sizes (default 256 256)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-time", type=float, default=10.0,
                   help="stop training after this many seconds (default 10)")
    p.add_argument("--backend", default=None, help="numpy, numba or cython (default: fastest)")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, help=f"checkpoint path "
                   f"(default {DEFAULT_CHECKPOINT})")
    p.add_argument("--plot", default=None, help="write a loss-curve PNG here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.backend:
        set_backend(args.backend)
    if args.plot:
        require("matplotlib", "--plot")  # before training, not after
    t0 = time.perf_counter()
    model, history, acc, _ = train_digits(args.epochs, args.batch_size, args.lr,
                                          args.weight_decay, tuple(args.hidden), args.dropout,
                                          args.seed,
                                          args.max_time, not args.no_progress, args.plot)
    print(f"backend {get_backend().name}: {len(history['epoch'])} epochs in "
          f"{history['seconds'][-1]:.2f} s of training ({time.perf_counter() - t0:.2f} s total)"
          + (" (stopped at --max-time)" if history["stopped_early"] else ""))
    print(f"final train loss {history['train_loss'][-1]:.4f}")
    print(f"test accuracy: {acc:.4f}")
    save_checkpoint(model, args.out, test_accuracy=acc, seed=args.seed)
    print(f"saved checkpoint to {args.out}")
    if args.plot:
        print(f"saved loss curve to {args.plot}")
    return 0


def eval_main(argv):
    p = argparse.ArgumentParser(prog="fastnn eval mlp",
                                description="Reload an MLP checkpoint and report digits accuracy.")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--seed", type=int, default=None,
                   help="data split seed (default: the one stored in the checkpoint)")
    p.add_argument("--backend", default=None)
    args = p.parse_args(argv)
    if args.backend:
        set_backend(args.backend)
    model, meta = load_checkpoint(args.checkpoint, kind="mlp")
    seed = args.seed if args.seed is not None else int(meta.get("seed", 0))
    d = load_digits(seed=seed)
    acc = model.accuracy(d.X_test, d.y_test)
    print(f"{args.checkpoint}: MLP {'-'.join(map(str, model.sizes))}, "
          f"{model.num_parameters():,} parameters")
    print(f"test accuracy: {acc:.4f}")
    return 0
