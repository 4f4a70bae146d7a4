"""What `fastnn bench` prints and writes: a table per family (a column per implementation, a line
per metric), the training steps' table, the contention table, the thread-scaling table, and the
JSON rows."""
import statistics

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
    """The self-check of a blas_check case: its OpenBLAS column against OpenBLAS timed alone
    right before. A warning when over BLAS_CHECK_RATIO x, else a one-line 'agrees'; None when
    the case has no such check."""
    res = results.get("openblas")
    if res is None:
        return None
    t, lone = res.time(stat), res.lone_time(stat)
    if not (t and lone):
        return None
    if t <= BLAS_CHECK_RATIO * lone:
        return (f"  check: OpenBLAS on {case.label}: {_fmt_time(t)} in the round-robin, "
                f"{_fmt_time(lone)} alone ({t / lone:.2f}x, within {BLAS_CHECK_RATIO}x): agrees")
    return (f"  note: OpenBLAS on {case.label} took {_fmt_time(t)} in the round-robin but "
            f"{_fmt_time(lone)} alone right before ({t / lone:.2f}x): threads left spinning by "
            f"other implementations' turns (or other processes) are slowing it, so its column "
            f"and the % BLAS line read low for OpenBLAS")


def _fmt_mib(b):
    return f"{b / 2**20:.1f} MiB" if b >= 2**20 / 10 else f"{b / 2**10:.0f} KiB"


def _memory_metrics(results):
    """The --memory lines, when any result has them: (name, {impl: text})."""
    if not any(r.mem_rss is not None or r.mem_traced is not None for r in results.values()):
        return []
    return [("mem trace", {i: ("n/a" if r.mem_traced is None else _fmt_mib(r.mem_traced))
                           for i, r in results.items() if r.status != "n/a"}),
            ("mem RSS", {i: ("n/a" if r.mem_rss is None else _fmt_mib(r.mem_rss))
                         for i, r in results.items() if r.status != "n/a"})]


MEMORY_LEGEND = ("mem trace: peak of numpy's allocations during a call (tracemalloc; n/a for "
                 "PyTorch, whose allocator it cannot see); mem RSS: peak growth of the resident "
                 "set, sampled every 0.5 ms (misses memory malloc reuses)")


def _busy_note(case, results):
    busy = {IMPL_LABELS.get(i, i): r.busy_starts for i, r in results.items() if r.busy_starts}
    if not busy:
        return None
    return (f"  note: on {case.label}, turns that began before this process's threads went idle "
            f"(waited the maximum): " + ", ".join(f"{k} {v}" for k, v in busy.items()))


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
        for name, cells in _memory_metrics(results):
            lines.append(f"{'':{case_w}}{name:9}"
                         + "".join(f"{cells.get(impl, ''):>{width}}" for impl in impls))
        busy = _busy_note(case, results)
        if busy:
            notes.append(busy)
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


def _impl_label(impl):
    return IMPL_LABELS.get(impl, f"fastnn {impl}")


def format_train(measured, stat, peak, peak_how, width=15):
    """The training steps' table: per step, a column per implementation (fastnn's backends,
    PyTorch): ms/step, the ratio to PyTorch's time, MFU (model FLOPs per step over the measured
    GEMM peak `peak` FLOP/s), the worst step; the --memory lines when measured."""
    impls = sorted({i for _, res in measured for i in res}, key=impl_order)
    case_w = max(len(c.label) for c, _ in measured) + 2
    lines = [f"train: one training step (forward, loss, backward, optimizer), {stat} of single "
             f"steps; MFU against a GEMM peak of {peak / 1e9:.0f} GFLOP/s ({peak_how})",
             f"{'case':{case_w}}{'':10}" + "".join(f"{_impl_label(i):>{width}}" for i in impls)]
    notes = []
    for case, results in measured:
        t = {i: r.time(stat) for i, r in results.items()}
        base = t.get("torch")
        rows = [("ms/step", lambda i: f"{t[i] * 1e3:.3g}"),
                ("/PyTorch", lambda i: f"{t[i] / base:.2f}x" if base else "n/a"),
                ("MFU", lambda i: f"{100 * case.flops / t[i] / peak:.1f}%"),
                ("worst", lambda i: f"{max(results[i].samples) * 1e3:.3g} ms")]
        for k, (name, fmt) in enumerate(rows):
            cells = []
            for i in impls:
                r = results.get(i)
                cells.append("" if r is None else r.status if r.status != "ok"
                             else "n/a" if t[i] is None else fmt(i))
            lines.append(f"{case.label if k == 0 else '':{case_w}}{name:10}"
                         + "".join(f"{c:>{width}}" for c in cells))
        for name, cells in _memory_metrics(results):
            lines.append(f"{'':{case_w}}{name:10}"
                         + "".join(f"{cells.get(i, ''):>{width}}" for i in impls))
        for i, r in results.items():
            if r.status == "error":
                notes.append(f"  error {_impl_label(i)} on {case.label}: {r.note}")
        busy = _busy_note(case, results)
        if busy:
            notes.append(busy)
    lines.append(f"FLOPs per step: " + "; ".join(f"{c.name} {c.flops / 1e9:.3g} G"
                                                  for c, _ in measured)
                 + " (6 x weight multiply-adds x batch; GPT + nanoGPT's attention term)")
    return "\n".join(lines + notes)


def format_steady_state(label, stats):
    """The --memory check that a warm training step allocates nothing new."""
    share = stats["later_peak"] / max(stats["first_peak"], 1)
    verdict = (f"{100 * share:.0f}% of the first step's: "
               + ("its buffers are reused" if share <= 0.05 else "it allocates anew every step"))
    pool = ""
    if stats.get("pool_held"):   # the fused ops' reused buffers (fastnn.nn.buffer_pool)
        pool = (f"; {_fmt_mib(stats['pool_held'])} of work buffers kept for reuse, "
                f"{stats.get('pool_new', 0)} new ones after the first step")
    return (f"{label}: first step allocated up to {_fmt_mib(stats['first_peak'])} (numpy, "
            f"tracemalloc); each later step up to {_fmt_mib(stats['later_peak'])} of new "
            f"allocations, {stats['later_growth']:+d} bytes held after them, "
            f"{stats['minor_faults']:.0f} minor page faults per step{pool}; {verdict}")


def format_contention(title, measured, width=13):
    """Quiet vs contended, per case: measured is [(case, quiet {impl: Result}, contended)]."""
    impls = sorted({i for _, q, _ in measured for i in q}, key=impl_order)
    case_w = max(len(f"{c.family} {c.label}") for c, _, _ in measured) + 2
    lines = [title, f"{'case':{case_w}}{'':11}"
             + "".join(f"{IMPL_LABELS.get(i, i):>{width}}" for i in impls)]
    for case, quiet, loaded in measured:
        def cell(i, fn):
            q, c = quiet.get(i), loaded.get(i)
            if q is None:
                return ""
            if q.status != "ok" or c.status != "ok" or not q.samples or not c.samples:
                return q.status if q.status != "ok" else c.status
            return fn(statistics.median(q.samples), statistics.median(c.samples),
                      max(c.samples))
        rows = [("quiet", lambda q, c, w: _fmt_time(q)),
                ("contended", lambda q, c, w: _fmt_time(c)),
                ("slowdown", lambda q, c, w: f"{c / q:.2f}x"),
                ("worst/q", lambda q, c, w: f"{w / q:.1f}x")]
        for k, (name, fn) in enumerate(rows):
            lines.append(f"{(case.family + ' ' + case.label) if k == 0 else '':{case_w}}"
                         f"{name:11}" + "".join(f"{cell(i, fn):>{width}}" for i in impls))
    lines.append("quiet/contended: median per call (per step for train); slowdown: contended / "
                 "quiet; worst/q: the slowest contended call over the quiet median")
    return "\n".join(lines)


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
                "busy_starts": res.busy_starts, "mem_traced_bytes": res.mem_traced,
                "mem_rss_bytes": res.mem_rss,
            })
    return rows
