"""GPT training against the same model in PyTorch: step time and the validation loss reached in a
fixed training time. Both in one process, same weights, same batches, same threads, alternating.

    python bench/bench_gpt.py                      # step time only (a minute or two)
    python bench/bench_gpt.py --quality 180        # + 3 minutes of training each, interleaved
    python bench/bench_gpt.py --backend numba --threads 2 --rounds 30
    python bench/bench_gpt.py --modules            # + the module-by-module path (no fused blocks)

Step time: nanoGPT's CPU configuration (n_layer 4, n_head 4, n_embd 128, block 64, batch 12,
no bias, dropout 0) on the default corpus; one step = forward, loss, backward, grad clipping,
AdamW. The two run in alternating blocks of --block steps (the first step of each block is not
timed, so neither side pays for the other's thread pool going idle); medians over --rounds blocks.

Quality: each model trains for --quality seconds of its own step time (evaluation not counted),
in alternating slices of --slice seconds so that any load on the machine falls on both alike.
Same hyperparameters as `fastnn train gpt` (AdamW lr 1e-3, cosine to 1e-4 over the time budget
after 100 warmup steps, beta2 0.99, weight decay 0.1, clip 1.0). Then both are evaluated on the
whole validation split (the last 10% of the text, in consecutive windows of 64 characters, every
character predicted once): the loss in nats per character.
"""
import argparse
import dataclasses
import math
import time

import numpy as np

# the two runs and the hyperparameters are shared with `fastnn bench --train gpt`
from fastnn.bench.train_cases import (GPT_HP as HP, FastnnGPTRun as FastnnRun,
                                     TorchGPTRun as TorchRun, gemm_peak, gpt_flops)


class ModulesRun(FastnnRun):
    """fastnn's GPT run module by module (fastnn.models.gpt.FUSED off during its steps): the
    path before the fused block nodes, timed in the same alternation (--modules)."""
    name = "fastnn-modules"

    def step(self, x, y, lr):
        from fastnn.models import gpt
        saved, gpt.FUSED = gpt.FUSED, False
        try:
            return super().step(x, y, lr)
        finally:
            gpt.FUSED = saved


def lr_at(step, elapsed, budget):
    if step < HP["warmup"]:
        return HP["lr"] * (step + 1) / (HP["warmup"] + 1)
    frac = min(elapsed / budget, 1.0)
    return HP["min_lr"] + 0.5 * (1 + math.cos(math.pi * frac)) * (HP["lr"] - HP["min_lr"])


def step_time(runs, data, block, rounds, block_steps, rng):
    """Per-step seconds of each run, and its minor page faults per step."""
    import resource
    times = {r.name: [] for r in runs}
    faults = {r.name: 0 for r in runs}
    x, y = _batch(data, block, rng)
    for _ in range(rounds):
        for r in runs:
            r.step(x, y, 1e-4)  # untimed: wakes this side's thread pool
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(block_steps - 1):
                t0 = time.perf_counter()
                r.step(x, y, 1e-4)
                times[r.name].append(time.perf_counter() - t0)
            faults[r.name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return ({k: np.array(v) for k, v in times.items()},
            {k: v / len(times[k]) for k, v in faults.items()})


def _batch(data, block, rng):
    from fastnn.text import get_batch
    return get_batch(data, block, HP["batch_size"], rng)


def quality(runs, train, val, block, budget, slice_s, seed):
    state = {r.name: dict(step=0, elapsed=0.0, rng=np.random.default_rng(seed), last=None)
             for r in runs}
    t_start = time.perf_counter()
    while any(s["elapsed"] < budget for s in state.values()):
        for r in runs:
            s = state[r.name]
            stop = min(budget, s["elapsed"] + slice_s)
            while s["elapsed"] < stop:
                x, y = _batch(train, block, s["rng"])
                t0 = time.perf_counter()
                s["last"] = r.step(x, y, lr_at(s["step"], s["elapsed"], budget))
                s["elapsed"] += time.perf_counter() - t0
                s["step"] += 1
        print("  " + "   ".join(f"{n}: {s['elapsed']:5.0f}s, step {s['step']:5d}, loss "
                                f"{s['last']:.3f}" for n, s in state.items()),
              f"   (wall {time.perf_counter() - t_start:.0f}s)", flush=True)
    # the whole validation split, in consecutive windows; every target character once
    n = (len(val) - 1) // block
    xs = val[:n * block].reshape(n, block)
    ys = val[1:n * block + 1].reshape(n, block)
    out = {}
    for r in runs:
        losses = [r.eval_loss(xs[i:i + 64], ys[i:i + 64]) * len(xs[i:i + 64])
                  for i in range(0, n, 64)]
        out[r.name] = dict(val=sum(losses) / n, steps=state[r.name]["step"])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--block", type=int, default=5, help="steps per alternating block")
    p.add_argument("--quality", type=float, default=0, help="seconds of training each (0: skip)")
    p.add_argument("--slice", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--save", metavar="CKPT", help="after --quality, save the fastnn model")
    p.add_argument("--modules", action="store_true",
                   help="also time fastnn's GPT module by module (no fused block nodes)")
    p.add_argument("--malloc-default", action="store_true",
                   help="leave glibc's malloc thresholds alone (see gpt_cli.keep_freed_memory)")
    args = p.parse_args(argv)

    import torch
    import fastnn
    from fastnn import text
    from fastnn.models.gpt import GPT, GPTConfig
    from fastnn.models.gpt_cli import keep_freed_memory
    if args.backend:
        fastnn.set_backend(args.backend)
    if not args.malloc_default:
        keep_freed_memory()  # as `fastnn train gpt` does; PyTorch, in this process, gains too
    fastnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    corpus = text.default_corpus()
    tok = text.CharTokenizer.from_text(corpus)
    train, val = text.split(tok.encode(corpus))
    config = GPTConfig(block_size=64, vocab_size=tok.vocab_size, n_layer=4, n_head=4, n_embd=128,
                       dropout=0.0, bias=False)
    fastnn.manual_seed(args.seed)
    init = GPT(config).state_dict()  # both models start from these weights
    print(f"fastnn backend {fastnn.get_backend().name}, torch {torch.__version__}, "
          f"{args.threads} threads; GPT {config}")

    runs = [FastnnRun(config, init), TorchRun(config, init)]
    if args.modules:
        runs.append(ModulesRun(config, init))
    times, faults = step_time(runs, train, 64, args.rounds, args.block, np.random.default_rng(0))
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    best = {k: float(np.min(v)) * 1e3 for k, v in times.items()}
    print(f"train step (median of {len(times['fastnn'])}): fastnn {med['fastnn']:.2f} ms, "
          f"pytorch {med['pytorch']:.2f} ms, fastnn/pytorch = {med['fastnn'] / med['pytorch']:.3f}"
          f"  (best: {best['fastnn']:.2f} vs {best['pytorch']:.2f} ms, ratio "
          f"{best['fastnn'] / best['pytorch']:.3f}); page faults per step: fastnn "
          f"{faults['fastnn']:.0f}, pytorch {faults['pytorch']:.0f}")
    if args.modules:
        m = med["fastnn-modules"]
        print(f"module by module: {m:.2f} ms, /pytorch = {m / med['pytorch']:.3f}; fused / "
              f"module by module = {med['fastnn'] / m:.3f}; page faults per step "
              f"{faults['fastnn-modules']:.0f}")
    # MFU: nanoGPT's model FLOPs per step over this machine's GEMM peak, measured now
    peak, how = gemm_peak()
    flops = gpt_flops(dataclasses.asdict(config), HP["batch_size"])
    print(f"MFU: fastnn {100 * flops / (med['fastnn'] * 1e-3) / peak:.1f}%, pytorch "
          f"{100 * flops / (med['pytorch'] * 1e-3) / peak:.1f}% ({flops / 1e9:.2f} GFLOP per "
          f"step; GEMM peak {peak / 1e9:.0f} GFLOP/s: {how})")

    if args.quality > 0:
        runs = [FastnnRun(config, init), TorchRun(config, init)]
        print(f"quality: {args.quality:g} s of training each, slices of {args.slice:g} s")
        res = quality(runs, train, val, 64, args.quality, args.slice, args.seed)
        for name, r in res.items():
            print(f"  {name:8s} val loss {r['val']:.4f} nats/char after {r['steps']} steps")
        print(f"  fastnn - pytorch = {res['fastnn']['val'] - res['pytorch']['val']:+.4f} "
              f"nats/char")
        if args.save:
            from fastnn.models import save_checkpoint
            save_checkpoint(runs[0].model, args.save, tokenizer=tok)
            print(f"  saved the fastnn model to {args.save} (for `fastnn generate`)")


if __name__ == "__main__":
    main()
