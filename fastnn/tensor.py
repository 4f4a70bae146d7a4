"""fastnn.Tensor: a numpy array with reverse-mode autograd, in PyTorch's dialect.

    x = fastnn.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x

How the tape works: every op returns a Tensor that remembers its inputs (`_parents`) and one
closure (`_backward`) mapping the gradient of its output to the gradients of its inputs (None for
an input that needs none). `backward()` sorts the graph once (iteratively: deep graphs do not hit
the recursion limit), walks it output-to-inputs, sums the gradients arriving at each node, and
accumulates into `.grad` of the leaves (tensors created with requires_grad=True), as PyTorch does.

The heavy ops (matmul, activations, softmax, losses, layer norm, embedding) run on
`fastnn.kernels` (the current backend) in both directions. Cheap glue (elementwise arithmetic with
broadcasting, reductions, reshapes, indexing) uses numpy directly.

Gradient arrays are never modified in place by fastnn (two leaves may share one gradient array,
e.g. both inputs of an add); replace `.grad` rather than writing into it.
"""
import builtins  # this module defines sum/max/min/abs/pow as tensor ops
import functools
import math
import numbers
from collections import namedtuple

import numpy as np

from . import kernels as K
from .kernels import trusted as T

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = long = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
_DEFAULT_FLOAT = float32
_FLOAT_KINDS = "fc"

# ---------------------------------------------------------------- grad mode and random state
_grad_enabled = [True]   # a one-element list: the cheapest mutable global to read in every op


def is_grad_enabled():
    return _grad_enabled[0]


class _GradMode:
    """Context manager and decorator that sets whether ops record the graph."""
    enabled = True

    def __enter__(self):
        self._prev = _grad_enabled[0]
        _grad_enabled[0] = self.enabled

    def __exit__(self, *exc):
        _grad_enabled[0] = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """with fastnn.no_grad(): ... runs ops without recording gradients (inference, updates)."""
    enabled = False


class enable_grad(_GradMode):
    enabled = True


_rng = [np.random.default_rng()]


def manual_seed(seed):
    """Seed fastnn's random generator (randn, rand, parameter init, dropout, shuffling)."""
    _rng[0] = np.random.default_rng(int(seed))


def default_generator():
    """The numpy Generator behind fastnn's random ops (reseeded by manual_seed)."""
    return _rng[0]


# ---------------------------------------------------------------- the Tensor
def _dtype(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in ("float", "double", "long", "int", "half"):
        return {"float": float32, "double": float64, "long": int64, "int": int32,
                "half": float16}[dtype]
    return np.dtype(dtype)


class Tensor:
    """An n-d array (`.data`, a numpy array) with an optional gradient and autograd history."""
    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_post_acc_hooks")
    __array_priority__ = 1000  # so ndarray + Tensor dispatches to Tensor.__radd__
    _n_post_acc_hooks = [0]   # hooks registered on any leaf: backward() counts uses only if > 0
    _final_callbacks = []     # run once at the end of the current backward() (_queue_callback)

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data)
        if requires_grad and data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"only floating-point tensors can require gradients, got {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._post_acc_hooks = None

    # ------------------------------------------------------------ attributes
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return "cpu"

    @property
    def is_leaf(self):
        return self._backward is None

    @property
    def grad_fn(self):
        return self._backward

    @property
    def T(self):
        return permute(self, tuple(range(self.data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        return transpose(self, -2, -1)

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.data.shape}")
        return self.data.reshape(-1)[0].item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is "
                               f"ambiguous")
        return bool(self.data.reshape(-1)[0])

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype not in (float32, int64, bool_):
            extra += f", dtype={self.data.dtype}"
        if self._backward is not None:
            extra += ", grad_fn=<backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__  # __eq__ is elementwise, but tensors stay usable as dict keys

    def __iter__(self):
        for i in range(len(self.data)):
            yield self[i]

    # ------------------------------------------------------------ autograd
    def detach(self):
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"only floating-point tensors can require gradients, "
                            f"got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_(self):
        self.data[...] = 0
        return self

    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (gradient: d(loss)/d(self))."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no graph "
                               "(was it computed under no_grad, or from tensors without "
                               "requires_grad=True?)")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward(): gradient can be implicit only for a scalar "
                                   f"output, this one has shape {self.data.shape}")
            g = np.ones_like(self.data)
        else:
            g = np.array(gradient.data if isinstance(gradient, Tensor) else gradient,
                         dtype=self.data.dtype)  # a copy: a leaf's .grad may become this array
            if g.shape != self.data.shape:
                raise ValueError(f"backward(): gradient has shape {g.shape}, expected "
                                 f"{self.data.shape}")
        if self._backward is None:
            _accumulate_leaf(self, g)
            if self._post_acc_hooks:
                Tensor._settle_hooked((self,), {id(self): 1}, {id(self)})
            Tensor._run_final_callbacks()
            return
        grads = {id(self): g}
        order = _toposort(self)
        pending = accumulated = None
        if Tensor._n_post_acc_hooks[0]:
            # a hooked leaf may take several contributions (a shared weight): count its uses so
            # its hooks fire once, after the last one (PyTorch sums before AccumulateGrad)
            pending, accumulated = {}, set()
            for node in order:
                for p in node._parents:
                    if p._backward is None and getattr(p, "_post_acc_hooks", None):
                        pending[id(p)] = pending.get(id(p), 0) + 1
        for node in order:
            g = grads.pop(id(node), None)
            fn, parents = node._backward, node._parents
            if not retain_graph:  # free the saved arrays as we go, as PyTorch does
                node._backward, node._parents = _released, ()
            if g is not None:
                for p, gp in zip(parents, fn(g)):
                    if gp is None or not p.requires_grad:
                        continue
                    if p._backward is None:
                        _accumulate_leaf(p, gp)
                        if pending:
                            accumulated.add(id(p))
                    else:
                        k = id(p)
                        prev = grads.get(k)
                        grads[k] = gp if prev is None else prev + gp
            if pending:
                Tensor._settle_hooked(parents, pending, accumulated)
        Tensor._run_final_callbacks()

    class _RemovableHandle:
        def __init__(self, hooks, key):
            self._hooks, self._key = hooks, key

        def remove(self):
            if self._hooks.pop(self._key, None) is not None:
                Tensor._n_post_acc_hooks[0] -= 1

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs after backward() has accumulated all of its contributions into this
        leaf's .grad (once per backward, PyTorch's rule). Returns a handle with .remove()."""
        if self._backward is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "tensor that doesn't require gradient")
        hooks = getattr(self, "_post_acc_hooks", None)
        if hooks is None:
            hooks = self._post_acc_hooks = {}
        key = object()
        hooks[key] = hook
        Tensor._n_post_acc_hooks[0] += 1
        return Tensor._RemovableHandle(hooks, key)

    @staticmethod
    def _settle_hooked(parents, pending, accumulated):
        """One use of each hooked leaf among `parents` is done; fire the hooks of those whose
        last use this was and that received a gradient."""
        for p in parents:
            k = id(p)
            n = pending.get(k)
            if n is None:
                continue
            if n > 1:
                pending[k] = n - 1
                continue
            del pending[k]
            if k in accumulated:
                for hook in list(p._post_acc_hooks.values()):
                    hook(p)

    @staticmethod
    def _queue_callback(fn):
        """Run fn() once when the backward() in progress finishes (PyTorch's
        Variable._execution_engine.queue_callback; DistributedDataParallel waits on its
        gradient reductions there)."""
        Tensor._final_callbacks.append(fn)

    @staticmethod
    def _run_final_callbacks():
        cbs = Tensor._final_callbacks
        while cbs:
            cbs.pop(0)()

    # ------------------------------------------------------------ conversions
    def to(self, *args, dtype=None, **kwargs):
        """to(dtype); device strings ('cpu') are accepted and ignored."""
        for a in args:
            if isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda"):
                continue
            dtype = a
        if dtype is None or _dtype(dtype) == self.data.dtype:
            return self
        return _cast(self, _dtype(dtype))

    def type(self, dtype):
        return self.to(dtype)

    def float(self):
        return self.to(float32)

    def double(self):
        return self.to(float64)

    def long(self):
        return self.to(int64)

    def int(self):
        return self.to(int32)

    def bool(self):
        return self.to(bool_)

    def contiguous(self):
        if self.data.flags.c_contiguous:
            return self
        return _node(np.ascontiguousarray(self.data), (self,), lambda g: (g,))

    def clone(self):
        return _node(self.data.copy(), (self,), lambda g: (g,))

    def cpu(self):
        return self

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(self, other)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(_lift(other, self), self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(self, other)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(_lift(other, self), self)

    def __pow__(self, other):
        return pow(self, other)

    def __rpow__(self, other):
        return pow(_lift(other, self), self)

    def __neg__(self):
        return _node(-self.data, (self,), lambda g: (-g,))

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(_lift(other, self), self)

    def __getitem__(self, index):
        return getitem(self, index)

    def __setitem__(self, index, value):
        """In-place write into .data; not recorded, so refused where a gradient could be wrong."""
        if self.requires_grad and _grad_enabled[0]:
            raise RuntimeError("in-place assignment into a tensor that requires grad is not "
                               "recorded by autograd; do it under fastnn.no_grad() or build a new "
                               "tensor (e.g. with masked_fill, where or cat)")
        if isinstance(index, Tensor):
            index = index.data
        self.data[index] = _raw(value)

    # comparisons: boolean tensors, no gradient
    def __lt__(self, other):
        return Tensor(self.data < _raw(other))

    def __le__(self, other):
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor(self.data >= _raw(other))

    def __eq__(self, other):
        return Tensor(self.data == _raw(other))

    def __ne__(self, other):
        return Tensor(self.data != _raw(other))

    def __invert__(self):
        return Tensor(~self.data)

    def __and__(self, other):
        return Tensor(self.data & _raw(other))

    def __or__(self, other):
        return Tensor(self.data | _raw(other))

    # ------------------------------------------------------------ methods (see the functions)
    def add(self, other):
        return add(self, other)

    def sub(self, other):
        return sub(self, other)

    def mul(self, other):
        return mul(self, other)

    def div(self, other):
        return div(self, other)

    def pow(self, other):
        return pow(self, other)

    def matmul(self, other):
        return matmul(self, other)

    def sum(self, dim=None, keepdim=False):
        return sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=True):
        return var(self, dim, keepdim, unbiased)

    def std(self, dim=None, keepdim=False, unbiased=True):
        return sqrt(var(self, dim, keepdim, unbiased))

    def max(self, dim=None, keepdim=False):
        return max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return amax(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return Tensor(_arg(np.argmin, self.data, dim, keepdim))

    def reshape(self, *shape):
        return reshape(self, *shape)

    def view(self, *shape):
        return reshape(self, *shape)

    def view_as(self, other):
        return reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return transpose(self, dim0, dim1)

    def permute(self, *dims):
        return permute(self, *dims)

    def unsqueeze(self, dim):
        return unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return squeeze(self, dim)

    def expand(self, *sizes):
        return expand(self, *sizes)

    def split(self, split_size_or_sections, dim=0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return chunk(self, chunks, dim)

    def masked_fill(self, mask, value):
        return masked_fill(self, mask, value)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs(self)

    def tril(self, diagonal=0):
        return tril(self, diagonal)

    def triu(self, diagonal=0):
        return triu(self, diagonal)

    def relu(self):
        return relu(self)

    def sigmoid(self):
        return sigmoid(self)

    def tanh(self):
        return tanh(self)

    def softmax(self, dim=-1):
        return softmax(self, dim)

    def log_softmax(self, dim=-1):
        return log_softmax(self, dim)


def _released(g):
    raise RuntimeError("backward(): trying to go through part of the graph a second time; its "
                       "buffers were freed by the first backward(). Pass retain_graph=True to the "
                       "first call if you need to.")


def _accumulate_leaf(leaf, g):
    data = leaf.data
    if g.shape != data.shape:
        raise RuntimeError(f"internal autograd error: gradient of shape {g.shape} for a leaf of "
                           f"shape {data.shape}")
    if g.dtype != data.dtype:
        g = g.astype(data.dtype)
    if leaf.grad is None:
        # a leaf's .grad is a plain C-contiguous writeable array (views of broadcasts are not)
        leaf.grad = g if (g.flags.c_contiguous and g.flags.writeable) else np.array(g)
    else:
        leaf.grad = leaf.grad + g


def _toposort(root):
    """Nodes reachable from root that have a backward, outputs first (iterative DFS)."""
    order = []
    seen = {id(root)}
    stack = [(root, iter(root._parents))]
    while stack:
        node, it = stack[-1]
        for p in it:
            if p._backward is not None and id(p) not in seen:
                seen.add(id(p))
                stack.append((p, iter(p._parents)))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _node(data, parents, backward):
    """The result of an op: records (parents, backward) when grad mode is on and a parent needs a
    gradient."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t._parents = ()
    t._backward = None
    t.requires_grad = False
    if _grad_enabled[0]:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._parents = parents
                t._backward = backward
                break
    return t


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _lift(x, like):
    """A Tensor for a non-Tensor operand; Python scalars take `like`'s dtype, as PyTorch does."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and like.data.dtype.kind in _FLOAT_KINDS:
        return Tensor(np.asarray(x, dtype=like.data.dtype))
    return Tensor(np.asarray(x))


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched, so it has `shape`."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _axes(dim, ndim):
    """dim (None, int, or sequence) -> a sorted tuple of non-negative axes, or None for all."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(sorted(d % ndim if ndim else 0 for d in dim))
    return (dim % ndim if ndim else 0,)


# ---------------------------------------------------------------- construction
def tensor(data, requires_grad=False, dtype=None):
    """A new Tensor holding a copy of `data`. numpy arrays keep their dtype; Python floats become
    float32, Python ints int64, bools bool."""
    if isinstance(data, Tensor):
        data = data.data
    dtype = _dtype(dtype)
    if dtype is None and not isinstance(data, np.ndarray):
        arr = np.array(data)
        if arr.dtype == float64 and not isinstance(data, np.generic):
            arr = arr.astype(_DEFAULT_FLOAT)
    else:
        arr = np.array(data, dtype=dtype)
    return Tensor(arr, requires_grad=requires_grad)


def from_numpy(array):
    """A Tensor sharing memory with `array`."""
    return Tensor(array)


def _shape_args(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _float_dtype(dtype):
    return _DEFAULT_FLOAT if dtype is None else _dtype(dtype)


def zeros(*size, dtype=None, requires_grad=False):
    return Tensor(np.zeros(_shape_args(size), _float_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return Tensor(np.ones(_shape_args(size), _float_dtype(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, bool):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = int64
    return Tensor(np.full(_shape_args((size,)), fill_value, _float_dtype(dtype)), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros(t.shape, _dtype(dtype) or t.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones(t.shape, _dtype(dtype) or t.dtype), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return Tensor(np.full(t.shape, fill_value, _dtype(dtype) or t.dtype), requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    dt = _float_dtype(dtype)
    return Tensor(_rng[0].standard_normal(_shape_args(size), dtype=dt), requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    dt = _float_dtype(dtype)
    return Tensor(_rng[0].random(_shape_args(size), dtype=dt), requires_grad)


def randn_like(t, dtype=None):
    return randn(*t.shape, dtype=dtype or t.dtype)


def randint(low, high=None, size=(), dtype=None):
    if high is None:
        low, high = 0, low
    return Tensor(_rng[0].integers(low, high, size=tuple(size), dtype=_dtype(dtype) or int64))


def randperm(n, dtype=None):
    return Tensor(_rng[0].permutation(n).astype(_dtype(dtype) or int64))


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Integers (int64) when start, end and step are all ints, else float32, as PyTorch."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if ints else _DEFAULT_FLOAT
    return Tensor(np.arange(start, end, step).astype(_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None):
    return Tensor(np.eye(n, m, dtype=_float_dtype(dtype)))


# ---------------------------------------------------------------- elementwise arithmetic (numpy)
def add(a, b):
    if not isinstance(b, Tensor):
        if isinstance(b, np.ndarray):
            b = Tensor(b)
        else:
            return _node(a.data + b, (a,), lambda g: (g,))
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    sa, sb = a.data.shape, b.data.shape
    return _node(a.data + b.data, (a, b),
                 lambda g: (_unbroadcast(g, sa), _unbroadcast(g, sb)))


def sub(a, b):
    if not isinstance(b, Tensor):
        if isinstance(b, np.ndarray):
            b = Tensor(b)
        else:
            return _node(a.data - b, (a,), lambda g: (g,))
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    sa, sb = a.data.shape, b.data.shape
    return _node(a.data - b.data, (a, b),
                 lambda g: (_unbroadcast(g, sa), _unbroadcast(-g, sb) if b.requires_grad else None))


def mul(a, b):
    if not isinstance(b, Tensor):
        if isinstance(b, np.ndarray):
            b = Tensor(b)
        else:
            return _node(a.data * b, (a,), lambda g: (g * b,))
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (_unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
                _unbroadcast(g * ad, bd.shape) if b.requires_grad else None)
    return _node(ad * bd, (a, b), backward)


def div(a, b):
    if not isinstance(b, Tensor):
        if isinstance(b, np.ndarray):
            b = Tensor(b)
        else:
            return _node(a.data / b, (a,), lambda g: (g / b,))
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    ad, bd = a.data, b.data
    out = ad / bd

    def backward(g):
        return (_unbroadcast(g / bd, ad.shape) if a.requires_grad else None,
                _unbroadcast(-g * out / bd, bd.shape) if b.requires_grad else None)
    return _node(out, (a, b), backward)


def pow(a, b):
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    ad = a.data
    if not isinstance(b, Tensor):
        if isinstance(b, np.ndarray):
            b = Tensor(b)
        else:
            if b == 2:  # the common case: cheaper than a general power
                return _node(ad * ad, (a,), lambda g: (g * (2 * ad),))
            return _node(ad ** b, (a,), lambda g: (g * (b * ad ** (b - 1)),))
    bd = b.data
    out = ad ** bd

    def backward(g):
        ga = _unbroadcast(g * bd * ad ** (bd - 1), ad.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = _unbroadcast(g * out * np.where(ad > 0, np.log(np.where(ad > 0, ad, 1)), 0),
                                  bd.shape)
        return ga, gb
    return _node(out, (a, b), backward)


def exp(a):
    out = np.exp(a.data)
    return _node(out, (a,), lambda g: (g * out,))


def log(a):
    ad = a.data
    return _node(np.log(ad), (a,), lambda g: (g / ad,))


def sqrt(a):
    out = np.sqrt(a.data)
    return _node(out, (a,), lambda g: (g * 0.5 / out,))


def abs(a):
    ad = a.data
    return _node(np.abs(ad), (a,), lambda g: (g * np.sign(ad),))


def _cast(a, dtype):
    src = a.data.dtype
    if dtype.kind not in _FLOAT_KINDS:
        return Tensor(a.data.astype(dtype))
    return _node(a.data.astype(dtype), (a,), lambda g: (g.astype(src),))


def where(condition, a, b):
    """a where condition else b (condition: a bool tensor or array; no gradient through it)."""
    cond = _raw(condition)
    if not isinstance(a, Tensor):
        a = _lift(a, b) if isinstance(b, Tensor) else Tensor(np.asarray(a))
    if not isinstance(b, Tensor):
        b = _lift(b, a)
    ad, bd = a.data, b.data

    def backward(g):
        zero = np.zeros((), g.dtype)
        return (_unbroadcast(np.where(cond, g, zero), ad.shape) if a.requires_grad else None,
                _unbroadcast(np.where(cond, zero, g), bd.shape) if b.requires_grad else None)
    return _node(np.where(cond, ad, bd), (a, b), backward)


def masked_fill(a, mask, value):
    """a with `value` wherever mask is True (mask broadcasts to a's shape)."""
    m = _raw(mask)
    ad = a.data
    out = np.where(m, np.asarray(value, ad.dtype), ad)
    if out.shape != ad.shape:
        raise ValueError(f"masked_fill: mask of shape {np.shape(m)} does not broadcast to the "
                         f"tensor's shape {ad.shape}")
    return _node(out, (a,), lambda g: (np.where(m, np.zeros((), g.dtype), g),))


def tril(a, diagonal=0):
    keep = np.tri(*a.data.shape[-2:], k=diagonal, dtype=bool)
    return _node(np.where(keep, a.data, 0).astype(a.data.dtype), (a,),
                 lambda g: (np.where(keep, g, 0).astype(g.dtype),))


def triu(a, diagonal=0):
    keep = ~np.tri(*a.data.shape[-2:], k=diagonal - 1, dtype=bool)
    return _node(np.where(keep, a.data, 0).astype(a.data.dtype), (a,),
                 lambda g: (np.where(keep, g, 0).astype(g.dtype),))


# ---------------------------------------------------------------- matmul (kernels.gemm / bmm)
def matmul(a, b):
    """a @ b with PyTorch's rules: 2-D x 2-D is a GEMM, leading dims broadcast as a batch, and a
    1-D operand is treated as a row (left) or column (right) vector and its dim removed."""
    if not isinstance(a, Tensor):
        a = Tensor(np.asarray(a))
    if not isinstance(b, Tensor):
        b = Tensor(np.asarray(b))
    ad, bd = a.data, b.data
    if ad.ndim == 0 or bd.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension")
    if ad.ndim == 1:
        return squeeze(matmul(unsqueeze(a, 0), b), -2)
    if bd.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, 1)), -1)
    m, k = ad.shape[-2:]
    k2, n = bd.shape[-2:]
    if k != k2:
        raise ValueError(f"matmul: shapes {ad.shape} and {bd.shape} cannot be multiplied "
                         f"({k} != {k2})")
    if bd.ndim == 2:
        # (..., M, K) @ (K, N): fold the batch into the rows of one GEMM
        a2 = ad if ad.ndim == 2 else ad.reshape(-1, k)
        out = T.gemm(a2, bd)

        def backward(g):
            g2 = g if g.ndim == 2 else g.reshape(-1, n)
            ga = T.gemm(g2, bd, trans_b=True).reshape(ad.shape) if a.requires_grad else None
            gb = T.gemm(a2, g2, trans_a=True) if b.requires_grad else None
            return ga, gb
        return _node(out.reshape(ad.shape[:-1] + (n,)), (a, b), backward)
    batch = np.broadcast_shapes(ad.shape[:-2], bd.shape[:-2])
    a3 = (ad if ad.shape[:-2] == batch else np.broadcast_to(ad, batch + (m, k))).reshape(-1, m, k)
    b3 = (bd if bd.shape[:-2] == batch else np.broadcast_to(bd, batch + (k, n))).reshape(-1, k, n)
    out = K.bmm(a3, b3).reshape(batch + (m, n))

    def backward(g):
        g3 = g.reshape(-1, m, n)
        ga = gb = None
        if a.requires_grad:
            ga = _unbroadcast(K.bmm(g3, b3, trans_b=True).reshape(batch + (m, k)), ad.shape)
        if b.requires_grad:
            gb = _unbroadcast(K.bmm(a3, g3, trans_a=True).reshape(batch + (k, n)), bd.shape)
        return ga, gb
    return _node(out, (a, b), backward)


# ---------------------------------------------------------------- reductions
def _expand_back(g, axes, keepdim, shape):
    """Broadcast a reduced gradient back to the input's shape."""
    if axes is not None and not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def sum(a, dim=None, keepdim=False):
    ad = a.data
    axes = _axes(dim, ad.ndim)
    shape = ad.shape
    return _node(np.asarray(ad.sum(axis=axes, keepdims=keepdim)), (a,),
                 lambda g: (_expand_back(g, axes, keepdim, shape),))


def mean(a, dim=None, keepdim=False):
    ad = a.data
    axes = _axes(dim, ad.ndim)
    shape = ad.shape
    count = ad.size if axes is None else math.prod(shape[i] for i in axes)
    out = np.asarray(ad.mean(axis=axes, keepdims=keepdim))
    return _node(out, (a,), lambda g: (_expand_back(g / count, axes, keepdim, shape),))


def var(a, dim=None, keepdim=False, unbiased=True):
    centered = a - mean(a, dim, keepdim=True)
    axes = _axes(dim, a.data.ndim)
    count = a.data.size if axes is None else math.prod(a.data.shape[i] for i in axes)
    return sum(centered * centered, dim, keepdim) / builtins.max(count - int(unbiased), 1)


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _arg(fn, data, dim, keepdim):
    if dim is None:
        return np.asarray(fn(data.reshape(-1)), dtype=int64)
    return np.asarray(fn(data, axis=dim, keepdims=keepdim), dtype=int64)


def _extreme(a, dim, keepdim, argfn, valfn):
    ad = a.data
    if dim is None:
        out = np.asarray(valfn(ad))
        # ties share the gradient equally, as PyTorch's full reduction does
        def backward(g):
            hit = ad == out
            return (np.where(hit, g / np.count_nonzero(hit), 0).astype(ad.dtype),)
        return _node(out, (a,), backward)
    axis = dim % ad.ndim
    idx = argfn(ad, axis=axis, keepdims=True)
    values = np.take_along_axis(ad, idx, axis=axis)

    def backward(g):
        full = np.zeros_like(ad)
        np.put_along_axis(full, idx, g if keepdim else np.expand_dims(g, axis), axis=axis)
        return (full,)
    if not keepdim:
        values = values.squeeze(axis)
    return MaxResult(_node(values, (a,), backward),
                     Tensor((idx if keepdim else idx.squeeze(axis)).astype(int64)))


def max(a, dim=None, keepdim=False):
    """max() -> the largest value; max(dim) -> (values, indices), as PyTorch."""
    return _extreme(a, dim, keepdim, np.argmax, np.max)


def min(a, dim=None, keepdim=False):
    return _extreme(a, dim, keepdim, np.argmin, np.min)


def amax(a, dim=None, keepdim=False):
    if dim is None or isinstance(dim, int):
        r = max(a, dim, keepdim)
        return r if dim is None else r.values
    raise NotImplementedError("amax over several dims")


def argmax(a, dim=None, keepdim=False):
    return Tensor(_arg(np.argmax, _raw(a), dim, keepdim))


# ---------------------------------------------------------------- shape ops
def reshape(a, *shape):
    shape = _shape_args(shape)
    src = a.data.shape
    return _node(a.data.reshape(shape), (a,), lambda g: (g.reshape(src),))


def flatten(a, start_dim=0, end_dim=-1):
    shape = a.data.shape
    if not shape:
        return reshape(a, 1)
    s, e = start_dim % len(shape), end_dim % len(shape)
    return reshape(a, shape[:s] + (-1,) + shape[e + 1:])


def transpose(a, dim0, dim1):
    return _node(np.swapaxes(a.data, dim0, dim1), (a,), lambda g: (np.swapaxes(g, dim0, dim1),))


def permute(a, *dims):
    dims = _shape_args(dims)
    inverse = tuple(np.argsort(dims))
    return _node(np.transpose(a.data, dims), (a,), lambda g: (np.transpose(g, inverse),))


def unsqueeze(a, dim):
    src = a.data.shape
    return _node(np.expand_dims(a.data, dim), (a,), lambda g: (g.reshape(src),))


def squeeze(a, dim=None):
    src = a.data.shape
    if dim is None:
        out = a.data.squeeze()
    else:
        dims = tuple(d % a.data.ndim for d in ((dim,) if isinstance(dim, int) else dim))
        out = a.data.squeeze(tuple(d for d in dims if src[d] == 1))  # PyTorch skips non-1 dims
    return _node(out, (a,), lambda g: (g.reshape(src),))


def expand(a, *sizes):
    sizes = _shape_args(sizes)
    ad = a.data
    target = tuple(ad.shape[i - (len(sizes) - ad.ndim)] if s == -1 else s
                   for i, s in enumerate(sizes))
    return _node(np.broadcast_to(ad, target), (a,), lambda g: (_unbroadcast(g, ad.shape),))


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if not (p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral))) or \
                isinstance(p, (bool, np.bool_)):
            return False
    return True


def getitem(a, index):
    """a[index]: basic slicing gives a view; integer/boolean array indices gather. The backward
    scatters the gradient back (np.add.at where an index may repeat)."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = np.asarray(index)
    ad = a.data
    out = ad[index]
    basic = _is_basic_index(index)

    def backward(g):
        full = np.zeros(ad.shape, g.dtype)
        if basic:
            full[index] = g
        else:
            np.add.at(full, index, g)
        return (full,)
    return _node(out, (a,), backward)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    datas = [t.data for t in tensors]
    axis = dim % datas[0].ndim
    bounds = np.cumsum([d.shape[axis] for d in datas])[:-1]
    return _node(np.concatenate(datas, axis=axis), tuple(tensors),
                 lambda g: tuple(np.split(g, bounds, axis=axis)))


concat = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    out = np.stack([t.data for t in tensors], axis=dim)
    axis = dim % out.ndim
    return _node(out, tuple(tensors),
                 lambda g: tuple(np.take(g, i, axis=axis) for i in range(len(tensors))))


def split(a, split_size_or_sections, dim=0):
    """Pieces along dim: of size split_size (the last may be smaller), or of the listed sizes."""
    length = a.data.shape[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        sizes = [builtins.min(step, length - s) for s in range(0, length, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} do not add up to {length} (dim {dim})")
    axis = dim % a.data.ndim
    out, start = [], 0
    for s in sizes:
        index = (slice(None),) * axis + (slice(start, start + s),)
        out.append(getitem(a, index))
        start += s
    return tuple(out)



def chunk(a, chunks, dim=0):
    length = a.data.shape[dim]
    return split(a, -(-length // chunks) if length else 1, dim)


# ---------------------------------------------------------------- activations and softmax
# Tensor methods (x.relu(), x.softmax(dim)) and nn.functional share these. Kernels come through
# the trusted entry point (fastnn/kernels/trusted.py): the same results as fastnn.kernels.*,
# without re-validating arrays that are already known to be good.
def relu(input):
    x = input.data
    return _node(T.relu(x), (input,), lambda g: (T.relu_backward(g, x),))


def leaky_relu(input, negative_slope=0.01):
    x = input.data
    return _node(T.leaky_relu(x, negative_slope), (input,),
                 lambda g: (T.leaky_relu_backward(g, x, negative_slope),))


def sigmoid(input):
    y = T.sigmoid(input.data)
    return _node(y, (input,), lambda g: (T.sigmoid_backward(g, y),))


def tanh(input):
    y = T.tanh(input.data)
    return _node(y, (input,), lambda g: (T.tanh_backward(g, y),))


def gelu(input, approximate="none"):
    x = input.data
    return _node(T.gelu(x, approximate), (input,),
                 lambda g: (T.gelu_backward(g, x, approximate),))


def _last_axis_op(input, dim, forward, backward_kernel):
    """Run a last-axis row kernel over any dim by moving that dim last (and back)."""
    x = input.data
    axis = dim % x.ndim if x.ndim else 0
    if axis == x.ndim - 1:
        y = forward(x)
        return _node(y, (input,), lambda g: (backward_kernel(g, y),))
    ym = forward(np.moveaxis(x, axis, -1))
    return _node(np.moveaxis(ym, -1, axis), (input,),
                 lambda g: (np.moveaxis(backward_kernel(np.moveaxis(g, axis, -1), ym), -1, axis),))


def softmax(input, dim=-1):
    return _last_axis_op(input, dim, T.softmax, T.softmax_backward)


def log_softmax(input, dim=-1):
    return _last_axis_op(input, dim, T.log_softmax, T.log_softmax_backward)
