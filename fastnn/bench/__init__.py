"""`fastnn bench`: fastnn's kernels against naive numpy, OpenBLAS and PyTorch (see cli.py's doc).

    cases.py           the families and their cases, derived from the kernel registry
                       (every kernel declared with bench=Bench(kind, params)), plus 'overhead'
    timing.py          measure(): check each implementation, then round-robin turns, each
                       from idle threads (wait_idle); measure_steps(): single steps, in turns
    train_cases.py     --train: MLP, GPT and CNN training steps vs PyTorch, FLOPs, GEMM peak
    memory.py          --memory: peak extra memory (tracemalloc, RSS); a warm step's allocations
    contention.py      --contention: quiet vs with busy processes
    worker.py          PyTorch's training steps in a process of their own (its own defaults)
    torch_gpt.py       nanoGPT's model in PyTorch (imports torch; only when PyTorch is wanted)
    machine.py         the machine description, PyTorch's presence, the printed header
    thread_control.py  one thread count for fastnn, PyTorch and numpy's BLAS (--threads)
    report.py          the tables, the thread scaling, the JSON rows
    plot.py            the bar chart (--plot)
    cli.py             the command line: `fastnn bench` runs cli.main
"""
from .cases import (IMPL_LABELS, IMPL_ORDER, SIZES, Case, Family, cases, families, family_names,
                    impls_for)
from .machine import machine_info, torch_available
from .report import format_family, format_scaling
from .timing import Result, measure
from .cli import main

__all__ = ["IMPL_LABELS", "IMPL_ORDER", "SIZES", "Case", "Family", "cases", "families",
           "family_names", "impls_for", "machine_info", "torch_available", "format_family",
           "format_scaling", "Result", "measure", "main"]
