"""`fastnn train gpt` and `fastnn generate`: a character-level GPT that learns text and writes it.

    fastnn train gpt --minutes 3                        # CPython's docs -> runs/gpt.npz
    fastnn train gpt --text quijote.txt --steps 2000 --out runs/quijote.npz   # any UTF-8 text
    fastnn train gpt --resume runs/gpt.npz --minutes 10 # continue a run (10 minutes in all)
    fastnn generate --prompt "The " --temperature 0.8 --top-k 40    # from runs/gpt.npz
    fastnn generate --checkpoint runs/gpt.npz --prompt "The " --temperatures 0,0.5,1,1.5
    fastnn generate --prompt "The " --show-attention runs/attention.png   # what each head looks at

Training: nanoGPT's CPU recipe by default (4 layers, 4 heads, 128 wide, context 64, batch 12),
AdamW (beta2 0.99, weight decay 0.1 on 2-D weights) with a linear warmup and a cosine decay to
min-lr at the end of the run (the end is --steps steps, or --minutes of training time, eval not
counted), gradient clipping at norm 1. Every --eval-interval steps it prints the mean loss on
--eval-iters batches of the training and validation split (the last 10% of the text), in nats
per character, and writes the checkpoint. A checkpoint holds the model, its config, the
vocabulary, the optimizer state, the step, the run's length and the random states, so --resume
continues the same run; --steps/--minutes then give the new total length of the run.

Generation: temperature 0 is greedy (argmax) decoding, deterministic; --seed makes sampling
repeatable (without it a random seed is drawn and printed; every temperature of --temperatures
uses the same seed, so the runs differ by temperature only). An empty prompt starts from a
newline. A prompt longer than the model's context (block_size characters) is cropped to its last
block_size characters, with a notice: the model cannot see further back. Characters the model
never saw are an error that lists them, unless --replace-unknown C stands C in for each of them.
--temperatures prints the same prompt at several temperatures with the mean entropy (nats per
token) of the distributions the tokens were drawn from: low temperature is predictable, high
temperature is surprising.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

from .. import text as textlib
from ..errors import UsageError
from ..kernels import get_backend
from ..nn.parallel import DistributedDataParallel
from ..nn.utils import clip_grad_norm_
from ..optim.lr_scheduler import LRScheduler
from ..serialization import CheckpointError
from ..tensor import default_generator, manual_seed, no_grad, tensor
from ..threads import get_num_threads
from .checkpoint import load_checkpoint, save_checkpoint
from .common_cli import (Parser, RankStopped, abort_on_error, add_device_option,
                         add_distributed_option, add_runtime_options, agree, fraction,
                         nonnegative_float, nonnegative_int, open_fraction, positive_float, positive_int,
                         probability, runs_path, setup_runtime, start_distributed,
                         sum_across_ranks)
from .gpt import GPT, GPTConfig, entropy

DEFAULT_CHECKPOINT = runs_path("gpt.npz")


# ---------------------------------------------------------------- process setup
def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=256 << 20):
    """Ask glibc's malloc to keep freed blocks for reuse instead of returning them to the OS.

    A training step allocates and frees the same few MB of arrays every time. By default glibc
    serves big blocks with fresh mmaps and trims the heap top on free, so each step touches new
    pages: ~3,900 page faults per step for the GPT below (each a kernel entry and a zeroed
    page), ~5 with these settings. Process-wide; a no-op where glibc is not the allocator."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
                and mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))


# ---------------------------------------------------------------- random states (in checkpoints)
def _rng_state(gen):
    return gen.bit_generator.state


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


# ---------------------------------------------------------------- training
class WarmupCosineLR(LRScheduler):
    """nanoGPT's learning rate: a linear warmup over `warmup` steps up to the base lr, then a
    cosine from it down to min_lr at the end of the run. The run ends after max_steps steps, or
    after max_seconds of training time: then the loop sets .elapsed before each step() and the
    cosine follows the time spent. As every LRScheduler: step() after optimizer.step()."""

    def __init__(self, optimizer, warmup, min_lr, max_steps=None, max_seconds=None, elapsed=0.0,
                 last_epoch=-1):
        if (max_steps is None) == (max_seconds is None):
            raise ValueError("WarmupCosineLR: give one of max_steps and max_seconds")
        self.warmup, self.min_lr = warmup, min_lr
        self.max_steps, self.max_seconds, self.elapsed = max_steps, max_seconds, elapsed
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        if t < self.warmup:
            return base_lr * (t + 1) / (self.warmup + 1)
        if self.max_steps is not None:
            frac = (t - self.warmup) / max(1, self.max_steps - self.warmup)
        else:
            frac = self.elapsed / self.max_seconds
        frac = min(max(frac, 0.0), 1.0)
        return self.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (base_lr - self.min_lr)


def estimate_loss(model, splits, eval_iters, batch_size, rng, rank=0, world_size=1,
                  device=None):
    """Mean loss (nats/char) over eval_iters random batches of each split, in eval mode.

    With world_size > 1 (a process group up, every rank calling it with the same rng state)
    every rank draws the same batches and computes every world_size-th of them, and the sums
    are added across ranks: the same mean as one process, in 1/world_size of the time.
    device: where the model is (batches go there); None leaves them on the CPU."""
    out = {}
    was_training = model.training
    model.eval()
    sums = []
    with no_grad():
        for name, data in splits.items():
            total = 0.0
            for i in range(eval_iters):
                x, y = textlib.get_batch(data, model.config.block_size, batch_size, rng)
                if i % world_size == rank:
                    if device is not None:   # numpy windows -> tensors on the model's device
                        x, y = tensor(x, device=device), tensor(y, device=device)
                    total += float(model(x, y)[1]._data)
            sums.append(total)
    model.train(was_training)
    if world_size > 1:
        sums = sum_across_ranks(sums)
    for name, total in zip(splits, sums):
        out[name] = float(total) / eval_iters
    return out


def _train_parser():
    p = Parser(prog="fastnn train gpt", description=__doc__)
    p.add_argument("--text", metavar="FILE", help="UTF-8 text to learn (default: the "
                   "documentation text inside CPython, pydoc_data.topics, ~465k characters)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=positive_float,
                        help="train for this much time (default: 3, or the resumed run's length)")
    length.add_argument("--steps", type=positive_int, help="train for this many steps "
                        "(default: --minutes)")
    p.add_argument("--out", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="checkpoint to write; folders are created")
    p.add_argument("--resume", metavar="CKPT", help="continue the run saved in CKPT "
                   "(default: start a new run)")
    m = p.add_argument_group("model (nanoGPT's CPU configuration by default)")
    m.add_argument("--n-layer", type=positive_int, default=4)
    m.add_argument("--n-head", type=positive_int, default=4)
    m.add_argument("--n-embd", type=positive_int, default=128)
    m.add_argument("--block-size", type=positive_int, default=64,
                   help="context length in characters")
    m.add_argument("--dropout", type=fraction, default=0.0)
    m.add_argument("--bias", action="store_true", help="biases in Linear and LayerNorm")
    o = p.add_argument_group("optimization")
    o.add_argument("--batch-size", type=positive_int, default=12)
    o.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    o.add_argument("--min-lr", type=nonnegative_float, default=1e-4,
                   help="learning rate at the end of the run")
    o.add_argument("--warmup", type=nonnegative_int, default=100, help="warmup steps")
    o.add_argument("--weight-decay", type=nonnegative_float, default=0.1)
    o.add_argument("--beta2", type=fraction, default=0.99)
    o.add_argument("--grad-clip", type=nonnegative_float, default=1.0,
                   help="gradient norm limit; 0 disables clipping")
    e = p.add_argument_group("evaluation and running")
    e.add_argument("--eval-interval", type=positive_int, default=250,
                   help="steps between evaluations (each also writes the checkpoint)")
    e.add_argument("--eval-iters", type=positive_int, default=20, help="batches per evaluation")
    e.add_argument("--val-fraction", type=open_fraction, default=0.1,
                   help="the share of the text held out for validation (its end)")
    e.add_argument("--seed", type=nonnegative_int, default=1337)
    add_runtime_options(e)
    add_device_option(e)
    add_distributed_option(e)
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


PROG = "fastnn train gpt"


def _prepare(args, world):
    """Read the text (and --resume's checkpoint) and check what the run needs: the model, its
    tokenizer, the run state and hyperparameters, the data splits and the run's length."""
    corpus = textlib.load_text(args.text) if args.text else textlib.default_corpus()
    run, meta = {}, None
    if args.resume:
        model, meta = load_checkpoint(args.resume, kind="gpt")
        tok, run = meta["tokenizer"], meta["train_state"]
        if run is None or meta["optimizer_state"] is None:
            raise CheckpointError(f"{args.resume} has no training state to resume from")
        bad = tok.unknown_chars(corpus)
        if bad:
            raise ValueError(f"the text has {len(bad)} character(s) that the checkpoint's "
                             f"vocabulary lacks: {', '.join(map(repr, bad[:20]))}; resume on the "
                             f"text it was trained on")
        hp = run["hparams"]
    else:
        tok = textlib.CharTokenizer.from_text(corpus)
        config = GPTConfig(block_size=args.block_size, vocab_size=tok.vocab_size,
                           n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                           dropout=args.dropout, bias=args.bias)
        if config.n_embd % config.n_head:
            raise ValueError(f"--n-embd {config.n_embd} must be a multiple of --n-head "
                             f"{config.n_head}")
        manual_seed(args.seed)
        model = GPT(config)
        hp = {k: getattr(args, k) for k in ("batch_size", "lr", "min_lr", "warmup",
                                           "weight_decay", "beta2", "grad_clip", "eval_interval",
                                           "eval_iters", "val_fraction", "seed")}
    if hp["batch_size"] % world:
        what = "the resumed run's batch size" if args.resume else "--batch-size"
        raise UsageError(f"{what} {hp['batch_size']} does not split evenly over {world} ranks "
                         f"(--batch-size is the global batch: make it a multiple of {world})")
    # the run's length: what was asked now, else what the resumed run had, else 3 minutes
    if args.steps is not None:
        max_steps, max_seconds = args.steps, None
    elif args.minutes is not None:
        max_steps, max_seconds = None, args.minutes * 60
    elif run:
        max_steps, max_seconds = run.get("max_steps"), run.get("max_seconds")
    else:
        max_steps, max_seconds = None, 180.0

    data = tok.encode(corpus)
    train_data, val_data = textlib.split(data, hp["val_fraction"])
    block = model.config.block_size
    if len(train_data) <= block or len(val_data) <= block:
        raise ValueError(f"the text is too short ({len(data)} characters) for a "
                         f"{hp['val_fraction']:.0%} validation split with context {block}; use "
                         f"a longer text or a smaller --block-size")
    return model, meta, tok, run, hp, max_steps, max_seconds, train_data, val_data


def train_main(argv):
    """`fastnn train gpt`. A user mistake (a bad text, checkpoint or option) raises ValueError,
    OSError or CheckpointError; fastnn.cli prints it as one line.

    With --distributed under mpiexec every rank draws the same global batch (the same seed) and
    trains on its shard through DistributedDataParallel; what the ranks must decide alike (the
    time spent, which ends the run and drives the cosine schedule) is rank 0's, broadcast;
    evaluation is shared out across the ranks; rank 0 alone prints and writes checkpoints."""
    args = _train_parser().parse_args(argv)
    from tqdm.auto import tqdm
    setup_runtime(args)
    rank, world = start_distributed(args, PROG)   # before any input is read: see agree()
    try:
        with abort_on_error(PROG):
            return _train(args, rank, world, tqdm)
    except RankStopped:   # another rank failed, and says why
        return 2


def _train(args, rank, world, tqdm):
    from .. import distributed as dist
    keep_freed_memory()
    main = rank == 0
    (model, meta, tok, run, hp, max_steps, max_seconds, train_data,
     val_data) = agree(lambda: _prepare(args, world))
    block = model.config.block_size
    device = None if args.device == "cpu" else args.device
    model.to(args.device)             # before the optimizer: its state follows the parameters

    optimizer = model.configure_optimizers(hp["weight_decay"], hp["lr"], (0.9, hp["beta2"]))
    batch_rng = np.random.default_rng(hp["seed"])
    eval_rng = np.random.default_rng(hp["seed"] + 1)
    step, elapsed = 0, 0.0
    if run:
        optimizer.load_state_dict(meta["optimizer_state"])
        step, elapsed = run["step"], run["elapsed"]
        _set_rng_state(batch_rng, run["batch_rng"])
        _set_rng_state(eval_rng, run["eval_rng"])
        _set_rng_state(default_generator(), run["fastnn_rng"])
    if rank:  # dropout masks of their own on the other ranks (rank 0 keeps the run's stream)
        manual_seed(int(np.random.SeedSequence([hp["seed"], step, rank]).generate_state(1)[0]))
    for g in optimizer.param_groups:
        g["initial_lr"] = hp["lr"]  # the schedule's peak, whatever the last step's lr was
    scheduler = WarmupCosineLR(optimizer, hp["warmup"], hp["min_lr"], max_steps, max_seconds,
                               elapsed=elapsed, last_epoch=step - 1)  # sets the lr of `step`
    # every rank starts from rank 0's parameters; gradients are averaged during backward
    net = DistributedDataParallel(model) if dist.is_initialized() else model

    def done():
        return step >= max_steps if max_steps is not None else elapsed >= max_seconds

    def checkpoint(losses=None, sync=True):
        if main:
            state = {"step": step, "elapsed": elapsed, "max_steps": max_steps,
                     "max_seconds": max_seconds, "hparams": hp, "losses": losses,
                     "batch_rng": _rng_state(batch_rng), "eval_rng": _rng_state(eval_rng),
                     "fastnn_rng": _rng_state(default_generator())}
            save_checkpoint(model, args.out, tokenizer=tok, optimizer=optimizer,
                            train_state=state)
        if sync and dist.is_initialized():
            dist.barrier()   # no rank runs ahead of a checkpoint not yet on disk

    n_params = model.get_num_params()
    length = f"{max_steps} steps" if max_steps is not None else f"{max_seconds / 60:g} minutes"
    ranks = (f"{world} ranks x {get_num_threads()} threads, {hp['batch_size'] // world} of each "
             f"batch of {hp['batch_size']} per rank" if dist.is_initialized()
             else f"{get_num_threads()} threads")
    say = print if main else (lambda *a, **k: None)
    say(f"GPT: {n_params / 1e6:.2f}M parameters, {model.config.n_layer} layers, "
        f"{model.config.n_head} heads, width {model.config.n_embd}, context {block}; "
        f"vocabulary {tok.vocab_size} characters; {len(train_data):,} training and "
        f"{len(val_data):,} validation characters; backend {get_backend().name}, device "
        f"{args.device}, "
        f"{ranks}; run: {length}" + (f", resuming at step {step}" if run else ""), flush=True)
    if done():
        say(f"the run is already complete ({length}); pass a larger --steps or --minutes to "
            f"train further")
        dist.cleanup()
        return 0
    splits = {"train": train_data, "val": val_data}
    bar = tqdm(total=max_steps if max_steps is not None else max_seconds, initial=(
        step if max_steps is not None else elapsed), unit="step" if max_steps else "s",
        disable=args.no_progress or not main, dynamic_ncols=True, mininterval=0.5,
        bar_format=None if max_steps else "{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]")
    write = bar.write if main else (lambda *a, **k: None)
    losses = None
    model.train()
    try:
        while not done():
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            x, y = textlib.get_batch(train_data, block, hp["batch_size"], batch_rng)
            if world > 1:   # the same global batch on every rank; each trains on its share
                x, y = dist.shard(x), dist.shard(y)
            if device is not None:   # numpy windows -> tensors on the model's device
                x, y = tensor(x, device=device), tensor(y, device=device)
            _, loss = net(x, y)
            optimizer.zero_grad()
            loss.backward()
            if hp["grad_clip"]:
                clip_grad_norm_(model.parameters(), hp["grad_clip"])
            optimizer.step()
            dt = time.perf_counter() - t0
            # rank 0's clock for every rank: the end of a --minutes run and the cosine's time
            elapsed = dist.broadcast_scalar(elapsed + dt)
            step += 1
            scheduler.elapsed = elapsed
            scheduler.step()
            shown = float(loss._data)
            if world > 1 and not args.no_progress:   # the mean over the whole batch
                shown = float(sum_across_ranks([shown])[0]) / world
            # a time-based bar stops at its total: the last step's overshoot is not shown
            bar.update(1 if max_steps is not None else max(0.0, min(dt, bar.total - bar.n)))
            bar.set_postfix(step=step, loss=f"{shown:.3f}", lr=f"{lr:.1e}", refresh=False)
            if step % hp["eval_interval"] == 0 or done():
                losses = estimate_loss(model, splits, hp["eval_iters"], hp["batch_size"],
                                       eval_rng, rank, world, device)
                write(f"step {step}: train loss {losses['train']:.4f}, val loss "
                      f"{losses['val']:.4f} nats/char ({elapsed:.0f}s of training)")
                checkpoint(losses)
    except KeyboardInterrupt:
        write("interrupted: saving the checkpoint")
        checkpoint(losses, sync=False)   # the other ranks are being interrupted too
        bar.close()
        return 130
    bar.close()
    say(f"saved {args.out} (step {step}); try: fastnn generate --checkpoint {args.out} "
        f"--prompt \"The \" --temperatures 0,0.5,1,1.5")
    dist.cleanup()
    return 0


# ---------------------------------------------------------------- generation
def _temperatures(s):
    try:
        ts = [float(t) for t in s.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None
    if not ts or any(not (0 <= t < math.inf) for t in ts):
        raise argparse.ArgumentTypeError(f"temperatures must be finite and >= 0, got {s!r}")
    return ts


def _generate_parser():
    p = Parser(prog="fastnn generate", description=__doc__)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="PATH",
                   help="a checkpoint from `fastnn train gpt`")
    p.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=nonnegative_int, default=300)
    p.add_argument("--temperature", type=nonnegative_float, default=0.8, help="0 = greedy")
    p.add_argument("--temperatures", type=_temperatures, metavar="T1,T2,...",
                   help="generate at each temperature, with the mean entropy per token "
                        "(default: only --temperature)")
    p.add_argument("--top-k", type=positive_int, help="sample from the k most likely "
                   "characters (default: all)")
    p.add_argument("--top-p", type=probability, help="sample from the smallest set of "
                   "characters whose probability reaches p (default: all)")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="random seed (default: a random one, printed)")
    p.add_argument("--replace-unknown", metavar="C", help="encode characters outside the "
                   "vocabulary as C (which must be in it) instead of stopping with an error "
                   "(default: stop)")
    p.add_argument("--show-attention", metavar="FILE.png", help="also draw, for the text "
                   "written (at the first temperature), which earlier characters each head of "
                   "each layer attends to (its last 40 characters at most; default: no picture)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for "
                   "each token instead of using the key/value cache (same tokens, slower)")
    add_runtime_options(p)
    add_device_option(p)
    return p


def prepare_prompt(prompt, tokenizer, block_size, replace_unknown=None, notice=None):
    """Token ids (1, T) for a prompt, with the CLI's rules: empty -> a newline; characters
    outside the vocabulary -> ValueError listing them (or replace_unknown); longer than
    block_size -> the last block_size characters, reported through notice(msg)."""
    notice = notice or (lambda msg: None)
    if replace_unknown is not None:
        if len(replace_unknown) != 1 or replace_unknown not in tokenizer.stoi:
            raise ValueError(f"--replace-unknown {replace_unknown!r} must be one character of "
                             f"the vocabulary")
        tokenizer = textlib.CharTokenizer(tokenizer.chars, replacement=replace_unknown)
    if prompt == "":
        if "\n" not in tokenizer.stoi:
            raise ValueError("the prompt is empty and the vocabulary has no newline to start "
                             "from; pass --prompt with some text")
        notice("empty prompt: starting from a newline")
        prompt = "\n"
    bad = tokenizer.unknown_chars(prompt) if tokenizer.replacement is None else []
    if bad:
        raise ValueError(f"the prompt has {len(bad)} character(s) the model never saw: "
                         f"{', '.join(map(repr, bad))}. Remove them or pass "
                         f"--replace-unknown C (e.g. --replace-unknown ' ')")
    ids = tokenizer.encode(prompt)
    if len(ids) > block_size:
        notice(f"the prompt has {len(ids)} characters but the model sees only the last "
               f"{block_size}: using {tokenizer.decode(ids[-block_size:])!r}")
        ids = ids[-block_size:]
    return ids[None, :]


def generate_main(argv):
    """`fastnn generate`. A user mistake (a bad option, prompt or checkpoint) raises ValueError,
    OSError or CheckpointError; fastnn.cli prints it as one line."""
    args = _generate_parser().parse_args(argv)
    setup_runtime(args)
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"{args.checkpoint}: no such file; train one with `fastnn train "
                                f"gpt --out {args.checkpoint}`")
    model, meta = load_checkpoint(args.checkpoint, kind="gpt")
    model.to(args.device)     # forward passes there; tokens are sampled on the host
    tok = meta["tokenizer"]
    ids = prepare_prompt(args.prompt, tok, model.config.block_size, args.replace_unknown,
                         notice=lambda m: print(f"note: {m}", file=sys.stderr))
    temps = args.temperatures or [args.temperature]
    seed = args.seed
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2 ** 32)
        if any(t > 0 for t in temps):
            print(f"note: random seed {seed} (pass --seed {seed} to repeat this output)",
                  file=sys.stderr)
    prompt_text = tok.decode(ids[0])
    for i, temperature in enumerate(temps):
        # every temperature gets the same seed, so the runs differ by temperature only
        gen = np.random.default_rng(seed)
        if args.temperatures:
            print(f"{'' if i == 0 else chr(10)}=== temperature {temperature:g} ===")
        sys.stdout.write(prompt_text)
        ents, written = [], [ids[0]]
        for nxt, probs in model.generate_stream(ids, args.max_new_tokens, temperature,
                                                args.top_k, args.top_p, gen,
                                                use_cache=not args.no_cache):
            ents.append(entropy(probs)[0])
            written.append(nxt)
            sys.stdout.write(tok.decode(nxt))
            sys.stdout.flush()
        sys.stdout.write("\n")
        if args.show_attention and i == 0:
            from .attention_maps import save_attention_figure
            seq = np.concatenate(written)[-min(40, model.config.block_size):]
            save_attention_figure(model, seq, tok.decode(seq), args.show_attention)
            print(f"attention maps written to {args.show_attention}", file=sys.stderr)
        if args.temperatures:
            mean = float(np.mean(ents)) if ents else 0.0
            print(f"--- temperature {temperature:g}: mean entropy {mean:.3f} nats per token "
                  f"(perplexity {math.exp(mean):.2f}) over {len(ents)} tokens")
    return 0
