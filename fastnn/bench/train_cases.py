"""Whole training steps for `fastnn bench --train`, and the step builders bench/bench_mlp.py,
bench/bench_gpt.py and bench/bench_cnn.py share with it.

A step is forward, loss, backward and the optimizer's update, on fixed random data, in fastnn (on
one backend) and in PyTorch (the same model written with torch.nn):

    mlp-large  MLP 784-512-512-10 at batch 256, Adam
    mlp-small  MLP 64-128-128-10 at batch 64, Adam
    gpt        nanoGPT's CPU configuration (4 layers, 4 heads, 128 wide, T 64, batch 12, no bias,
               dropout 0): cross-entropy, backward, grad clipping to 1.0, AdamW; PyTorch's model
               is nanoGPT's (torch_gpt.py), loaded with fastnn's initial weights
    cnn        the digits CNN of `fastnn train cnn --data digits` (1x8x8 images, three stages of
               conv 3x3 -> BatchNorm -> ReLU -> max-pool, 32/64/128 channels, dropout 0.25,
               Linear to 10), batch 32, AdamW

Each TrainCase carries the model FLOPs of one step, for MFU: forward + backward = 6 x (the
weights' multiply-adds per sample) x batch (the usual 6N rule; nanoGPT's estimate_mfu for GPT,
which adds its attention term 12 x layers x T x width per token).
"""
import contextlib
import functools
import time
from dataclasses import dataclass

import numpy as np

from .. import nn, optim
from ..kernels.dispatch import use_backend
from ..models.gpt import GPT, GPTConfig
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_
from ..tensor import manual_seed, no_grad, tensor
from .machine import load_torch

TRAIN_NAMES = ("mlp-large", "mlp-small", "gpt", "cnn")

MLP_CONFIGS = {"mlp-large": ((784, 512, 512, 10), 256), "mlp-small": ((64, 128, 128, 10), 64)}
MLP_TINY = {"mlp-large": ((32, 16, 10), 8), "mlp-small": ((8, 16, 4), 4)}

# nanoGPT's CPU configuration, with the vocabulary of its shakespeare_char data (65 characters;
# bench/bench_gpt.py uses fastnn's default corpus, 103)
GPT_CONFIG = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                  bias=False)
GPT_TINY = dict(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=16, dropout=0.0,
                bias=False)
# `fastnn train gpt`'s hyperparameters (bench/bench_gpt.py uses them too)
GPT_HP = dict(lr=1e-3, min_lr=1e-4, warmup=100, weight_decay=0.1, betas=(0.9, 0.99),
              grad_clip=1.0, batch_size=12)

# the digits preset of fastnn.models.cnn (PRESETS["digits"])
CNN_DIGITS = dict(in_channels=1, image_size=8, num_classes=10, channels=(32, 64, 128),
                  dropout=0.25, batch=32, lr=6e-3, weight_decay=0.05)
CNN_TINY = dict(CNN_DIGITS, channels=(4, 8), batch=4)


@dataclass
class TrainCase:
    """One training step. build(impl) returns a zero-argument callable running one step; impl is
    a fastnn backend name or "torch"."""
    name: str
    label: str
    flops: float
    build: object
    family: str = "train"
    sizes: str = "quick"

    @property
    def id(self):
        return f"train-{self.name}"


def _on_backend(step, backend):
    """step, run with fastnn's current backend set to `backend` (None: leave it)."""
    if backend is None:
        return step

    def run():
        with use_backend(backend):
            return step()
    return run


# ---------------------------------------------------------------- MLP
def mlp_layers(mod, sizes):
    """Linear-ReLU-...-Linear in torch.nn's dialect: `mod` is fastnn.nn or torch.nn."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [mod.Linear(a, b), mod.ReLU()]
    return layers[:-1]


def mlp_data(sizes, batch):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], batch))


def mlp_step(sizes, batch, backend=None):
    """One fastnn MLP training step (cross-entropy, backward, Adam), on `backend` (None: the
    current one)."""
    with use_backend(backend) if backend else contextlib.nullcontext():
        manual_seed(0)
        model = nn.Sequential(*mlp_layers(nn, sizes))
        opt = optim.Adam(model.parameters(), lr=1e-3)
        X, Y = mlp_data(sizes, batch)
        x, y = tensor(X), tensor(Y)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _on_backend(step, backend)


def torch_mlp_step(sizes, batch):
    torch = load_torch()
    torch.manual_seed(0)
    model = torch.nn.Sequential(*mlp_layers(torch.nn, sizes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    X, Y = mlp_data(sizes, batch)
    x, y = torch.tensor(X), torch.tensor(Y)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def mlp_flops(sizes, batch):
    return 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


# ---------------------------------------------------------------- GPT
class FastnnGPTRun:
    """fastnn's GPT with nanoGPT's optimizer; step() = forward, loss, backward, clip, AdamW."""
    name = "fastnn"

    def __init__(self, config, state_dict, hp=GPT_HP):
        self.hp = hp
        self.model = GPT(config)
        self.model.load_state_dict(state_dict)
        self.opt = self.model.configure_optimizers(hp["weight_decay"], hp["lr"], hp["betas"])

    def step(self, x, y, lr):
        for g in self.opt.param_groups:
            g["lr"] = lr
        _, loss = self.model(x, y)
        self.opt.zero_grad()
        loss.backward()
        clip_grad_norm_(self.model.parameters(), self.hp["grad_clip"])
        self.opt.step()
        return float(loss._data)

    def eval_loss(self, x, y):
        self.model.eval()
        with no_grad():
            out = float(self.model(x, y)[1]._data)
        self.model.train()
        return out


class TorchGPTRun:
    """nanoGPT's model in PyTorch, the same step as FastnnGPTRun's."""
    name = "pytorch"

    def __init__(self, config, state_dict, hp=GPT_HP):
        from .torch_gpt import GPT as TorchGPT   # imports torch
        self.torch, self.hp = load_torch(), hp
        self.model = TorchGPT(config)
        self.model.load_state_dict({k: self.torch.tensor(np.asarray(v))
                                    for k, v in state_dict.items()})
        self.opt = self.model.configure_optimizers(hp["weight_decay"], hp["lr"], hp["betas"])

    def step(self, x, y, lr):
        torch = self.torch
        for g in self.opt.param_groups:
            g["lr"] = lr
        _, loss = self.model(torch.from_numpy(x), torch.from_numpy(y))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp["grad_clip"])
        self.opt.step()
        return loss.item()

    def eval_loss(self, x, y):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            out = self.model(torch.from_numpy(x), torch.from_numpy(y))[1].item()
        self.model.train()
        return out


def gpt_init(config, seed=1337):
    """fastnn's initial weights for `config` (both runs start from them)."""
    manual_seed(seed)
    return GPT(config).state_dict()


def gpt_step(impl, cfg, batch):
    """One GPT training step on random tokens; impl: a fastnn backend name or "torch"."""
    config = GPTConfig(**cfg)
    rng = np.random.default_rng(0)
    x = rng.integers(0, config.vocab_size, (batch, config.block_size))
    y = rng.integers(0, config.vocab_size, (batch, config.block_size))
    if impl == "torch":
        run = TorchGPTRun(config, gpt_init(config))
        return lambda: run.step(x, y, 1e-4)
    with use_backend(impl):
        run = FastnnGPTRun(config, gpt_init(config))
    return _on_backend(lambda: run.step(x, y, 1e-4), impl)


def gpt_flops(cfg, batch):
    """nanoGPT's estimate_mfu: (6 N + 12 L T C) per token, N without the position embeddings."""
    c, t, layers = cfg["n_embd"], cfg["block_size"], cfg["n_layer"]
    n = GPT(GPTConfig(**cfg)).get_num_params(non_embedding=True)
    return (6.0 * n + 12.0 * layers * t * c) * t * batch


# ---------------------------------------------------------------- CNN
def cnn_layers(mod, in_channels, image_size, num_classes, channels, dropout=0.0):
    """fastnn.models.CNN's layers in torch.nn's dialect (`mod` is fastnn.nn or torch.nn):
    stages of conv 3x3 (no bias) -> BatchNorm2d -> ReLU -> MaxPool2d(2), then Linear."""
    layers, c_in = [], in_channels
    for c in channels:
        layers += [mod.Conv2d(c_in, c, 3, padding=1, bias=False), mod.BatchNorm2d(c), mod.ReLU(),
                   mod.MaxPool2d(2)]
        c_in = c
    side = image_size >> len(channels)
    tail = [mod.Dropout(dropout)] if dropout else []
    return mod.Sequential(*layers, mod.Flatten(), *tail,
                          mod.Linear(c_in * side * side, num_classes))


def _cnn_data(cfg):
    rng = np.random.default_rng(0)
    side = cfg["image_size"]
    return (rng.random((cfg["batch"], cfg["in_channels"], side, side), dtype=np.float32),
            rng.integers(0, cfg["num_classes"], cfg["batch"]))


def _cnn_model_args(cfg):
    return (cfg["in_channels"], cfg["image_size"], cfg["num_classes"], cfg["channels"],
            cfg["dropout"])


def cnn_step(impl, cfg):
    """One CNN training step (cross-entropy, backward, AdamW); impl: fastnn backend or "torch"."""
    X, Y = _cnn_data(cfg)
    hyper = dict(lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if impl == "torch":
        torch = load_torch()
        torch.manual_seed(0)
        model = cnn_layers(torch.nn, *_cnn_model_args(cfg))
        opt = torch.optim.AdamW(model.parameters(), **hyper)
        x, y = torch.from_numpy(X), torch.from_numpy(Y)
        lossf = torch.nn.functional.cross_entropy
    else:
        with use_backend(impl):
            manual_seed(0)
            model = cnn_layers(nn, *_cnn_model_args(cfg))
            opt = optim.AdamW(model.parameters(), **hyper)
            x, y = tensor(X), tensor(Y)
        lossf = F.cross_entropy

    def step():
        loss = lossf(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step if impl == "torch" else _on_backend(step, impl)


def cnn_flops(cfg):
    side, c_in, macs = cfg["image_size"], cfg["in_channels"], 0
    for c in cfg["channels"]:
        macs += c_in * c * 9 * side * side
        side, c_in = side // 2, c
    macs += c_in * side * side * cfg["num_classes"]
    return 6.0 * macs * cfg["batch"]


# ---------------------------------------------------------------- the cases
def _mlp_build(sizes, batch, impl):
    return torch_mlp_step(sizes, batch) if impl == "torch" else mlp_step(sizes, batch, impl)


def train_cases(sizes="quick", names=None):
    """The TrainCases named (default all of TRAIN_NAMES), at 'quick'/'full' (the real configs)
    or 'tiny' (small models, for the tests)."""
    names = list(names or TRAIN_NAMES)
    for name in names:
        if name not in TRAIN_NAMES:
            raise ValueError(f"unknown training step {name!r}; choose from "
                             f"{', '.join(TRAIN_NAMES)}")
    tiny = sizes == "tiny"
    out = []
    for name in names:
        if name.startswith("mlp"):
            layers, batch = (MLP_TINY if tiny else MLP_CONFIGS)[name]
            out.append(TrainCase(name, f"MLP {'-'.join(map(str, layers))} @{batch}",
                                 mlp_flops(layers, batch),
                                 functools.partial(_mlp_build, layers, batch)))
        elif name == "gpt":
            cfg, batch = (GPT_TINY, 2) if tiny else (GPT_CONFIG, GPT_HP["batch_size"])
            out.append(TrainCase(name, f"GPT L{cfg['n_layer']} C{cfg['n_embd']} "
                                       f"T{cfg['block_size']} B{batch}",
                                 gpt_flops(cfg, batch), functools.partial(gpt_step, cfg=cfg,
                                                                          batch=batch)))
        else:
            cfg = CNN_TINY if tiny else CNN_DIGITS
            out.append(TrainCase(name, f"CNN digits {'/'.join(map(str, cfg['channels']))} "
                                       f"@{cfg['batch']}",
                                 cnn_flops(cfg), functools.partial(cnn_step, cfg=cfg)))
    for case in out:
        case.sizes = sizes
    return out



def gemm_peak(n=1024, turns=5, settle_s=0.12):
    """This machine's GEMM peak, measured now: (FLOP/s, how). The best of `turns` float32 n^3
    products by numpy's BLAS (np.matmul) and by fastnn's C GEMM (when built), from idle threads;
    the faster of the two is the peak MFU is measured against."""
    from ..kernels import dispatch, gemm
    from .timing import wait_idle
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    candidates = {"np.matmul": lambda: np.matmul(a, b, out=c)}
    if "cython" in dispatch.available_backends():
        candidates["fastnn C GEMM"] = lambda: gemm(a, b, c, backend="cython")
    best = {}
    for name, fn in candidates.items():
        fn()
        for _ in range(turns):
            if settle_s:
                wait_idle(settle_s)
            t0 = time.perf_counter()
            fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    name = min(best, key=best.get)
    return 2.0 * n ** 3 / best[name], f"{name}, {n}^3 float32, best of {turns}"
