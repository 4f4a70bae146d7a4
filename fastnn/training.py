"""A training loop: fit() runs epochs of mini-batches with validation, a tqdm progress bar, a
history of loss and accuracy, and optionally a loss-curve PNG (save_loss_curve)."""
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
    out, t = output.data, target.data
    if out.ndim != 2 or t.ndim != 1 or t.dtype.kind not in "iu":
        return None
    return int(np.count_nonzero(out.argmax(axis=1) == t))


def evaluate(model, loader, loss_fn=None):
    """Mean loss and accuracy (None when outputs are not class scores) over a loader, in eval
    mode and without gradients; the model's mode is restored afterwards."""
    loss_fn = loss_fn or CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    try:
        with no_grad():
            for x, y in loader:
                out = model(x)
                b = len(y.data)
                total += float(loss_fn(out, y).item()) * b
                c = _correct(out, y)
                correct = None if c is None or correct is None else correct + c
                n += b
    finally:
        model.train(was_training)
    if n == 0:
        return float("nan"), None
    return total / n, (None if correct is None else correct / n)


def fit(model, optimizer, train_loader, epochs=1, loss_fn=None, val_loader=None, scheduler=None,
        scheduler_interval="epoch", max_time=None, clip_grad_norm=None, progress=True,
        plot=None):
    """Train `model` and return its history.

    loss_fn(output, target) defaults to cross-entropy; scheduler.step() runs after every
    "epoch" or "batch" (scheduler_interval); max_time (seconds of training, validation
    excluded) stops early after the current batch; clip_grad_norm clips before each step;
    plot is a path for a loss-curve PNG. The history dict holds per-epoch lists: epoch,
    train_loss, train_acc, val_loss, val_acc, seconds (cumulative training time), and
    stopped_early.
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
    loss_fn = loss_fn or CrossEntropyLoss()
    history = {"epoch": [], "train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [],
               "seconds": [], "stopped_early": False}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * len(train_loader), unit="batch", leave=False,
                   mininterval=0.25)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    trained = 0.0
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            total, correct, n = 0.0, 0, 0
            for x, y in train_loader:
                out = model(x)
                loss = loss_fn(out, y)
                optimizer.zero_grad()
                loss.backward()
                if clip_grad_norm is not None:
                    clip_grad_norm_(params, clip_grad_norm)
                optimizer.step()
                if scheduler is not None and scheduler_interval == "batch":
                    scheduler.step()
                b = len(y.data)
                total += float(loss.data) * b
                c = _correct(out, y)
                correct = None if c is None or correct is None else correct + c
                n += b
                if bar is not None:
                    bar.update(1)
                if max_time is not None and trained + time.perf_counter() - t0 >= max_time:
                    history["stopped_early"] = True
                    break
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            trained += time.perf_counter() - t0
            history["epoch"].append(epoch)
            history["train_loss"].append(total / max(n, 1))
            history["train_acc"].append(None if correct is None else correct / max(n, 1))
            history["seconds"].append(trained)
            if val_loader is not None:
                vl, va = evaluate(model, val_loader, loss_fn)
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
    if plot:
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
