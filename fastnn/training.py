"""A training loop: fit() runs epochs of mini-batches with validation, a tqdm progress bar, a
history of loss and accuracy, and optionally a loss-curve PNG (save_loss_curve).

Data-parallel training (fastnn.distributed, under mpiexec) uses the same fit(): give it the
DistributedDataParallel model and a loader whose sampler is a DistributedSampler. fit() then
calls the sampler's set_epoch before each epoch, takes rank 0's clock for max_time (every rank
stops after the same batch), sums loss and accuracy over the ranks, and shows the progress bar
on rank 0 only; evaluate() adds up the ranks' shares when its loader has a DistributedSampler
too (else every rank evaluates the whole loader, with the same result)."""
import numbers
import os
import time

import numpy as np

from .errors import require
from .nn.modules import CrossEntropyLoss
from .nn.utils import clip_grad_norm_
from .tensor import no_grad

__all__ = ["fit", "evaluate", "save_loss_curve"]


def _correct(output, target):
    """Correct predictions in a batch of class scores (N, C) against int targets, else None."""
    out, t = output._data, target._data
    if out.ndim != 2 or t.ndim != 1 or t.dtype.kind not in "iu":
        return None
    return int(np.count_nonzero(out.argmax(axis=1) == t))


def _dist_group_up():
    from . import distributed as dist
    return dist.is_initialized() and dist.get_world_size() > 1


def _sum_over_ranks(values):
    """The elementwise sum over the ranks of a list of numbers (float64 numpy array)."""
    from . import distributed as dist
    buf = np.array(values, np.float64)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf


def _has_distributed_sampler(loader):
    from .utils.data import DistributedSampler
    return isinstance(getattr(loader, "sampler", None), DistributedSampler)


def evaluate(model, loader, loss_fn=None, distributed=None, device=None):
    """Mean loss and accuracy (None when outputs are not class scores) over a loader, in eval
    mode and without gradients; the model's mode is restored afterwards.

    distributed: add up the sums of every rank (each evaluating its share of the data); None
    means: when a process group of several ranks is up and the loader's sampler is a
    DistributedSampler. Every rank must call it then. device: move each batch there first (the
    model's device, e.g. 'cuda'); None leaves batches where they are."""
    loss_fn = loss_fn or CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    try:
        with no_grad():
            for x, y in loader:
                if device is not None:
                    x, y = x.to(device), y.to(device)
                out = model(x)
                b = len(y._data)
                total += float(loss_fn(out, y).item()) * b
                c = _correct(out, y)
                correct = None if c is None or correct is None else correct + c
                n += b
    finally:
        model.train(was_training)
    if distributed is None:
        distributed = _dist_group_up() and _has_distributed_sampler(loader)
    if distributed:
        total, c, n = _sum_over_ranks([total, -1 if correct is None else correct, n])
        correct = None if c < 0 else int(c)
        n = int(n)
    if n == 0:
        return float("nan"), None
    return total / n, (None if correct is None else correct / n)


def fit(model, optimizer, train_loader, epochs=1, loss_fn=None, val_loader=None, scheduler=None,
        scheduler_interval="epoch", max_time=None, clip_grad_norm=None, progress=True,
        plot=None, distributed=None, device=None):
    """Train `model` and return its history.

    loss_fn(output, target) defaults to cross-entropy; scheduler.step() runs after every
    "epoch" or "batch" (scheduler_interval); max_time (seconds of training, validation
    excluded) stops early after the current batch; clip_grad_norm clips before each step;
    plot is a path for a loss-curve PNG. The history dict holds per-epoch lists: epoch,
    train_loss, train_acc, val_loss, val_acc, seconds (cumulative training time), and
    stopped_early.

    A sampler with set_epoch (DistributedSampler) gets set_epoch(epoch - 1) before each epoch.
    distributed (None: whether a fastnn.distributed process group of several ranks is up):
    every rank runs fit() in step, on its share of each batch, with the DistributedDataParallel
    model; the time limit is rank 0's clock (broadcast, so every rank stops after the same
    batch), the history's losses and accuracies are over all ranks' samples (the same history
    on every rank), and only rank 0 shows the progress bar and writes the plot.

    device: move each batch there before the forward pass (the model's device: the PyTorch
    idiom `model.to(device)`, then `x.to(device)` per batch); None leaves batches where they are.
    """
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError("fit: scheduler_interval must be 'epoch' or 'batch'")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive integer, got {epochs!r}")
    if max_time is not None and not max_time >= 0:
        raise ValueError(f"fit: max_time must be >= 0 seconds (or None), got {max_time!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"fit: clip_grad_norm must be > 0 (or None), got {clip_grad_norm!r}")
    if plot:
        require("matplotlib", "fit(plot=...) (the loss-curve plot)")  # before training
    if distributed is None:
        distributed = _dist_group_up()
    main = True
    if distributed:
        from . import distributed as dist
        main = dist.is_main_process()
    loss_fn = loss_fn or CrossEntropyLoss()
    history = {"epoch": [], "train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [],
               "seconds": [], "stopped_early": False}
    bar = None
    if progress and main:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * len(train_loader), unit="batch", leave=False,
                   mininterval=0.25)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    set_epoch = getattr(getattr(train_loader, "sampler", None), "set_epoch", None)
    trained = 0.0
    try:
        for epoch in range(1, epochs + 1):
            if set_epoch is not None:
                set_epoch(epoch - 1)   # this epoch's shuffle, the same on every rank
            model.train()
            t0 = time.perf_counter()
            total, correct, n = 0.0, 0, 0
            for x, y in train_loader:
                if device is not None:
                    x, y = x.to(device), y.to(device)
                out = model(x)
                loss = loss_fn(out, y)
                optimizer.zero_grad()
                loss.backward()
                if clip_grad_norm is not None:
                    clip_grad_norm_(params, clip_grad_norm)
                optimizer.step()
                if scheduler is not None and scheduler_interval == "batch":
                    scheduler.step()
                b = len(y._data)
                total += float(loss._data) * b
                c = _correct(out, y)
                correct = None if c is None or correct is None else correct + c
                n += b
                if bar is not None:
                    bar.update(1)
                if max_time is not None:
                    stop = trained + time.perf_counter() - t0 >= max_time
                    if distributed:   # rank 0's decision, so every rank stops here alike
                        stop = bool(dist.broadcast_scalar(float(stop)))
                    if stop:
                        history["stopped_early"] = True
                        break
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            trained += time.perf_counter() - t0
            if distributed:
                trained = dist.broadcast_scalar(trained)   # rank 0's, in every rank's history
                total, c, n = _sum_over_ranks([total, -1 if correct is None else correct, n])
                correct = None if c < 0 else int(c)
                n = int(n)
            history["epoch"].append(epoch)
            history["train_loss"].append(total / max(n, 1))
            history["train_acc"].append(None if correct is None else correct / max(n, 1))
            history["seconds"].append(trained)
            if val_loader is not None:
                vl, va = evaluate(model, val_loader, loss_fn,
                                  distributed and _has_distributed_sampler(val_loader), device)
                history["val_loss"].append(vl)
                history["val_acc"].append(va)
            if bar is not None:
                post = {"loss": f"{history['train_loss'][-1]:.4f}"}
                if val_loader is not None and history["val_acc"][-1] is not None:
                    post["val_acc"] = f"{history['val_acc'][-1]:.3f}"
                bar.set_postfix(post, refresh=False)
            if history["stopped_early"]:
                break
    finally:
        if bar is not None:
            bar.close()
    if plot and main:
        save_loss_curve(history, plot)
    return history


def save_loss_curve(history, path):
    """Plot train (and validation) loss per epoch to a PNG with matplotlib's Agg backend
    (MissingDependencyError without matplotlib)."""
    require("matplotlib", "save_loss_curve (the loss-curve plot)")
    # the Agg canvas directly: no pyplot, so the caller's matplotlib backend is left alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(history["epoch"], history["train_loss"], label="train")
    if history["val_loss"]:
        ax.plot(history["epoch"], history["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
