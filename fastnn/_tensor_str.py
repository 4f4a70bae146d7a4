"""How tensors print: PyTorch's layout, character for character.

Programs print tensors, and a lesson or a test that compares a fastnn run with a PyTorch run
compares those lines too, so `print(x)` follows PyTorch's rules rather than numpy's:

- One format for the whole tensor, chosen from its finite nonzero values: integers print as
  `3.`; otherwise `precision` (4) decimals; scientific notation (`1.0000e-05`) once the largest
  magnitude is over 1e8 or over 1000x the smallest, or (non-integers) the smallest is under 1e-4.
  Every element is right-aligned to the widest.
- Rows wrap at `linewidth` (80) columns; nested dims are separated by dim-1 blank lines.
- Over `threshold` (1000) elements, each dim shows `edgeitems` (3) entries at either end and
  `...` between, and the format is chosen from the shown entries only.
- Suffixes: device when not the CPU, dtype when not the default (float32, int64 and bool are
  implied), `size=` for empty tensors that are not 1-D, then grad_fn or requires_grad; a suffix
  that would pass the line width goes on its own line.

fastnn.set_printoptions changes the options (PyTorch's arguments and profiles).
"""
import math

import numpy as np


class _Options:
    precision = 4
    threshold = 1000
    edgeitems = 3
    linewidth = 80
    sci_mode = None


OPTIONS = _Options()

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_options(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                sci_mode=None):
    """PyTorch's set_printoptions: a profile first, then any option given; sci_mode is always
    set (None: chosen per tensor)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r}; choose one of "
                             f"{sorted(_PROFILES)}")
        for k, v in _PROFILES[profile].items():
            setattr(OPTIONS, k, v)
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"set_printoptions: {k} must be a non-negative number, got {v!r}")
            setattr(OPTIONS, k, v)
    OPTIONS.sci_mode = sci_mode


def get_options():
    return dict(precision=OPTIONS.precision, threshold=OPTIONS.threshold,
                edgeitems=OPTIONS.edgeitems, linewidth=OPTIONS.linewidth,
                sci_mode=OPTIONS.sci_mode)


class _Formatter:
    """One element format for a whole tensor (computed from the values that will be shown)."""

    def __init__(self, shown):
        self.floating = shown.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        p = OPTIONS.precision
        if not self.floating:
            for v in shown.reshape(-1).tolist():
                self.width = max(self.width, len(str(v)))
            return
        vals = shown.reshape(-1)
        finite = vals[np.isfinite(vals) & (vals != 0)].astype(np.float64)
        if finite.size == 0:      # only zeros, infs and nans: printed as integers ("0.")
            return
        mags = np.abs(finite)
        lo, hi = float(mags.min()), float(mags.max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if OPTIONS.sci_mode is not None:
            self.sci_mode = bool(OPTIONS.sci_mode)
        elif self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        if self.sci_mode:
            self.width = max(len(f"{v:.{p}e}") for v in finite.tolist())
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in finite.tolist())
        else:
            self.width = max(len(f"{v:.{p}f}") for v in finite.tolist())

    def format(self, v):
        p = OPTIONS.precision
        if not self.floating:
            s = str(v)
        elif self.sci_mode:
            s = f"{v:{self.width}.{p}e}"
        elif self.int_mode:
            s = f"{v:.0f}"
            if math.isfinite(v):
                s += "."
        else:
            s = f"{v:.{p}f}"
        return " " * (self.width - len(s)) + s


def _summarized(a):
    """The entries that print when the tensor is summarized (edgeitems at both ends per dim)."""
    e = OPTIONS.edgeitems
    if a.ndim == 0:
        return a
    if a.shape[0] > 2 * e:
        parts = [a[:e], a[-e:]] if e else []
        if a.ndim == 1:
            return np.concatenate(parts) if parts else a[:0]
        return np.stack([_summarized(x) for part in parts for x in part]) if parts else a[:0]
    if a.ndim == 1:
        return a
    return np.stack([_summarized(x) for x in a])


def _body(a, indent, summarize, fmt):
    e = OPTIONS.edgeitems
    if a.ndim == 0:
        return fmt.format(a.item())
    cut = summarize and a.shape[0] > 2 * e
    if a.ndim == 1:
        per_line = max(1, int(math.floor((OPTIONS.linewidth - indent) / (fmt.width + 2))))
        if summarize and not e:
            items = ["..."]
        elif cut:
            items = ([fmt.format(v) for v in a[:e].tolist()] + [" ..."]
                     + [fmt.format(v) for v in a[-e:].tolist()])
        else:
            items = [fmt.format(v) for v in a.tolist()]
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"
    if summarize and not e:
        return "[...]"
    if cut:
        rows = ([_body(a[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."]
                + [_body(a[i], indent + 1, summarize, fmt) for i in range(a.shape[0] - e,
                                                                          a.shape[0])])
    else:
        rows = [_body(a[i], indent + 1, summarize, fmt) for i in range(a.shape[0])]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def array_str(a, indent):
    """The bracketed values of host array `a` as PyTorch prints them, `indent` columns in."""
    if a.dtype.kind == "c":      # complex: numpy's layout (PyTorch pairs two formatters)
        return np.array2string(a, separator=", ", prefix=" " * indent)
    if a.size == 0:
        return "[]"
    summarize = a.size > OPTIONS.threshold
    fmt = _Formatter(_summarized(a) if summarize else a)
    return _body(a, indent, summarize, fmt)


def tensor_repr(a, device=None, dtype=None, default_dtype=True, implied_dtype=True, grad=None,
                prefix="tensor("):
    """`tensor([...], device=..., size=..., dtype=..., grad_fn=...)` for host array `a`.
    device: shown when given; dtype: its name, shown unless implied (the default float dtype,
    int64 and bool) or, for an empty tensor, unless it is the default float dtype; grad: the
    grad_fn/requires_grad suffix, if any."""
    indent = len(prefix)
    suffixes = []
    if device is not None:
        suffixes.append(f"device='{device}'")
    if a.size == 0:
        if a.ndim != 1:
            suffixes.append(f"size={tuple(a.shape)}")
        if not default_dtype:
            suffixes.append(f"dtype={dtype}")
    elif not implied_dtype:
        suffixes.append(f"dtype={dtype}")
    if grad is not None:
        suffixes.append(grad)
    text = prefix + array_str(a, indent)
    parts = [text]
    last = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last + len(s) + 2 > OPTIONS.linewidth:
            parts.append(",\n" + " " * indent + s)
            last = indent + len(s)
        else:
            parts.append(", " + s)
            last += len(s) + 2
    parts.append(")")
    return "".join(parts)
