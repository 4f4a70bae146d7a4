"""What `fastnn bench` prints and writes: a table per family (a column per implementation, a line
per metric), the thread-scaling table, and the JSON rows."""
from .cases import IMPL_LABELS, families, impl_order

# the OpenBLAS column of a blas_check case is flagged when it is this much slower than OpenBLAS
# timed alone right before (threads left spinning by other turns; issue 16)
BLAS_CHECK_RATIO = 1.3


def _fmt_time(s):
    if s is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def _fmt_speedup(x):
    if x < 0.01:
        return "<0.01x"
    return f"{x:.2f}x" if x < 10 else (f"{x:.1f}x" if x < 100 else f"{x:.0f}x")


def _fmt_gflops(v):
    return "<0.1" if v < 0.05 else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def _cell(res, value, fmt):
    """A table cell: the formatted value, 'n/a' or 'error', and '!' on a wrong result."""
    if res is None:
        return ""
    if res.status in ("n/a", "error"):
        return res.status
    if value is None:
        return "n/a"
    return fmt(value) + ("!" if res.status == "mismatch" else "")


def row_metrics(case, results, stat):
    """{impl: {time_s, speedup, gflops, pct_openblas}} for one case."""
    t = {impl: r.time(stat) for impl, r in results.items()}
    base, blas = t.get("numpy"), t.get("openblas")
    out = {}
    for impl, ti in t.items():
        out[impl] = {
            "time_s": ti,
            "speedup_vs_numpy": base / ti if (ti and base) else None,
            "gflops": case.flops / ti / 1e9 if (ti and case.flops) else None,
            "pct_of_openblas": 100.0 * blas / ti if (ti and blas) else None,
        }
    return out


def blas_check_note(case, results, stat):
    """A note when the OpenBLAS column is over BLAS_CHECK_RATIO x OpenBLAS alone, else None."""
    res = results.get("openblas")
    if res is None:
        return None
    t, lone = res.time(stat), res.lone_time(stat)
    if not (t and lone) or t <= BLAS_CHECK_RATIO * lone:
        return None
    return (f"  note: OpenBLAS on {case.label} took {_fmt_time(t)} in the round-robin but "
            f"{_fmt_time(lone)} alone right before ({t / lone:.2f}x): threads left spinning by "
            f"other implementations' turns (or other processes) are slowing it, so its column "
            f"and the % BLAS line read low for OpenBLAS")


def format_family(family, measured, stat, width=12):
    """The table of one family: for each case, a line per metric, a column per implementation.
    family: a name from cases.families() or a cases.Family."""
    if isinstance(family, str):
        family = families()[family]
    impls = sorted({impl for _, res in measured for impl in res}, key=impl_order)
    labels = [IMPL_LABELS.get(i, i) for i in impls]
    case_w = max(len(c.label) for c, _ in measured) + 2
    lines = [f"{family.name}: {family.what}"]
    lines.append(f"{'case':{case_w}}{'':9}" + "".join(f"{lab:>{width}}" for lab in labels))
    notes = []
    for case, results in measured:
        m = row_metrics(case, results, stat)
        metrics = [("time", "time_s", _fmt_time), ("speedup", "speedup_vs_numpy", _fmt_speedup)]
        if case.flops:
            metrics.append(("GFLOP/s", "gflops", _fmt_gflops))
        if "openblas" in results:
            metrics.append(("% BLAS", "pct_of_openblas", "{:.0f}%".format))
        for i, (name, key, fmt) in enumerate(metrics):
            cells = [_cell(results.get(impl), m.get(impl, {}).get(key), fmt) for impl in impls]
            lines.append(f"{case.label if i == 0 else '':{case_w}}{name:9}"
                         + "".join(f"{c:>{width}}" for c in cells))
        for impl, res in results.items():
            if res.status in ("error", "mismatch"):
                notes.append(f"  {'!' if res.status == 'mismatch' else 'error'} "
                             f"{IMPL_LABELS.get(impl, impl)} on {case.label}: {res.note}")
        note = blas_check_note(case, results, stat)
        if note:
            notes.append(note)
    if "torch" in impls:
        torch_op = family.torch_op() if callable(family.torch_op) else family.torch_op
        lines.append(f"PyTorch: {torch_op}" + ("; OpenBLAS: numpy a @ b"
                                               if "openblas" in impls else ""))
    return "\n".join(lines + notes)


def format_scaling(all_measured, threads, stat, width=12):
    """Time at the first thread count over time at each other, per case and implementation."""
    base_t = threads[0]
    by_case = {}
    for t, family, case, results in all_measured:
        by_case.setdefault((family, case.label), {})[t] = results
    impls = sorted({i for _, _, _, res in all_measured for i in res}, key=impl_order)
    label_w = max(len(f"{f} {c}") for f, c in by_case) + 2
    lines = [f"thread scaling: time with {base_t} thread(s) / time with N"]
    lines.append(f"{'case':{label_w}}{'N':>4}" + "".join(f"{IMPL_LABELS.get(i, i):>{width}}"
                                                         for i in impls))
    for (family, label), per_t in by_case.items():
        base = per_t.get(base_t, {})
        for i, t in enumerate(threads[1:]):
            cells = []
            for impl in impls:
                b, r = base.get(impl), per_t.get(t, {}).get(impl)
                tb, tr = (b.time(stat) if b else None), (r.time(stat) if r else None)
                cells.append(f"{tb / tr:.2f}x" if (tb and tr) else ("" if r is None else "n/a"))
            lines.append(f"{(family + ' ' + label) if i == 0 else '':{label_w}}{t:>4}"
                         + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def json_rows(all_measured, stat, default_threads):
    """One flat record per (thread count, case, implementation)."""
    rows = []
    for n_threads, family, case, results in all_measured:
        metrics = row_metrics(case, results, stat)
        for impl, res in results.items():
            rows.append({
                "family": family, "case": case.label, "case_id": case.id,
                "threads": n_threads or default_threads, "impl": impl,
                "impl_label": IMPL_LABELS.get(impl, impl), "status": res.status,
                "note": res.note, "kernels": list(case.kernels), "flops": case.flops,
                **metrics[impl],
                "median_s": res.time("median"), "min_s": res.time("min"),
                "samples_s": res.samples, "calls_per_turn": res.number,
                "first_call_s": res.first_call_s,
                "alone_s": res.lone_time(stat), "alone_samples_s": res.lone_samples,
            })
    return rows
