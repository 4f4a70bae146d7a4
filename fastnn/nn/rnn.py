"""Recurrent layers with PyTorch's names, arguments, gate order and state-dict keys: nn.RNN,
nn.LSTM, nn.GRU (num_layers, batch_first, dropout between layers, bidirectional) and the single
steps nn.RNNCell, nn.LSTMCell, nn.GRUCell. The sequence layers also take a PackedSequence
(fastnn.nn.utils.rnn) and return one: each sample then runs its own length.

Parameters, per layer k and direction (suffix '' or '_reverse'), as torch:
    weight_ih_l{k}{suffix} (G*H, input of that layer), weight_hh_l{k}{suffix} (G*H, H),
    bias_ih_l{k}{suffix} (G*H,), bias_hh_l{k}{suffix} (G*H,)
with G = 1 (RNN), 4 (LSTM: gates i, f, g, o) or 3 (GRU: r, z, n), all drawn from
U(-1/sqrt(H), 1/sqrt(H)).

Each (layer, direction) runs as ONE autograd node (`recurrent_layer`): the input projection of
all time steps is one GEMM, then a Python loop over time does one (N, H) x (H, G*H) matmul and
the gates in numpy per step; backward is hand-written backpropagation through time, which ends with
one GEMM per weight over all steps. A graph of per-step Tensor ops would cost ~10 nodes per step
and an O(T^2) slicing backward; this costs one node.
"""
import math

import numpy as np

from ..kernels import trusted as T
from ..tensor import Tensor, _device, _dtype, _node, cat, get_default_dtype, stack
from . import functional as F
from . import init
from .modules import Module, Parameter
from .rnn_utils import PackedSequence, _ints, _layout, _padded_sorted

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _project(x2, w, b):
    """x2 (M, K) @ w.T (+ b): (M, G*H), as one GEMM."""
    if b is None:
        return T.gemm(x2, w, trans_b=True)
    out = np.empty((x2.shape[0], w.shape[0]), w.dtype)
    out[...] = b
    return T.gemm(x2, w, c=out, trans_b=True, beta=1.0)


def _gate_affine(hidden, dtype):
    """(scale, shift) per LSTM gate column: sigmoid(x) = 0.5 tanh(0.5 x) + 0.5 for i, f, o and
    tanh for g, so all four gates are tanh(gates * scale) * scale + shift: three numpy calls."""
    scale = np.full(4 * hidden, 0.5, dtype)
    scale[2 * hidden:3 * hidden] = 1
    shift = scale.copy()
    shift[2 * hidden:3 * hidden] = 0
    return scale, shift


def recurrent_layer(mode, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False,
                    lengths=None):
    """One layer, one direction, over a whole sequence, as one autograd node.

    mode: 'RNN_TANH', 'RNN_RELU', 'LSTM' or 'GRU'; x (T, N, In); h0, c0 (N, H) (c0 for LSTM only,
    else None); weights and biases as torch's. reverse runs from the last step to the first.
    lengths (N,) ints (a padded batch, as a PackedSequence holds): sample b only runs steps
    t < lengths[b], its state stays put elsewhere and its outputs there are zeros.
    Returns (T+1, N, H) for LSTM, the outputs h_t then the final c, else (T, N, H), the outputs.
    Gradients reach every Tensor argument.

    The input projection of all steps is one GEMM (with b_hh folded in where it is a plain sum);
    each step is one (N, H) x (H, G*H) matmul and the gates; the weights' gradients are one GEMM
    each over all steps. The per-step matmuls call numpy's BLAS directly: at these sizes the
    kernel door's Python overhead would cost more than the product."""
    xd, hd = x._data, h0._data
    wi, wh = w_ih._data, w_hh._data
    bi = None if b_ih is None else b_ih._data
    bh = None if b_hh is None else b_hh._data
    lstm, gru = mode == "LSTM", mode == "GRU"
    steps, n, _ = xd.shape
    hidden = wh.shape[1]
    dtype = wi.dtype
    order = list(range(steps - 1, -1, -1) if reverse else range(steps))
    masks = None
    if lengths is not None:
        masks = (np.arange(steps)[:, None] < np.asarray(lengths)[None, :]).astype(dtype)[..., None]

    # the bias of h's gates is added once to every step's input gates, except GRU's n gate
    # (there it sits inside r * (W_hn h + b_hn))
    folded = bi
    if bh is not None:
        folded = bh.copy() if bi is None else bi + bh
        if gru:
            folded[2 * hidden:] -= bh[2 * hidden:]
    xg = _project(np.ascontiguousarray(xd).reshape(steps * n, -1), wi, folded)
    xg = xg.reshape(steps, n, -1)
    bhn = bh[2 * hidden:] if (gru and bh is not None) else None
    wht = wh.T
    hs = np.empty((steps + 1, n, hidden), dtype)      # hs[t] = state after step t; hs[-1] = h0
    hs[-1] = hd
    acts = np.empty_like(xg) if not mode.startswith("RNN") else np.empty((steps, n, hidden),
                                                                        dtype)
    if lstm:
        scale, shift = _gate_affine(hidden, dtype)
        cs = np.empty((steps + 1, n, hidden), dtype)
        cs[-1] = c0._data
        tcs = np.empty((steps, n, hidden), dtype)     # tanh of each step's new c
    hn = np.empty((steps, n, hidden), dtype) if gru else None     # W_hn h + b_hn, per step
    prev = -1
    for t in order:
        h = hs[prev]
        a = acts[t]
        np.matmul(h, wht, out=a)
        if lstm:
            a += xg[t]
            a *= scale
            np.tanh(a, out=a)
            a *= scale
            a += shift
            c = a[:, hidden:2 * hidden] * cs[prev]
            c += a[:, :hidden] * a[:, 2 * hidden:3 * hidden]
            np.tanh(c, out=tcs[t])
            new_h = a[:, 3 * hidden:] * tcs[t]
            if masks is None:
                cs[t] = c
            else:
                cs[t] = cs[prev] + masks[t] * (c - cs[prev])
        elif gru:
            if bhn is not None:
                a[:, 2 * hidden:] += bhn
            hn[t] = a[:, 2 * hidden:]
            rz = a[:, :2 * hidden]
            rz += xg[t, :, :2 * hidden]
            rz *= 0.5
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            nn_ = a[:, 2 * hidden:]
            np.multiply(a[:, :hidden], hn[t], out=nn_)
            nn_ += xg[t, :, 2 * hidden:]
            np.tanh(nn_, out=nn_)
            z = a[:, hidden:2 * hidden]
            new_h = nn_ + z * (h - nn_)
        else:
            a += xg[t]
            if mode == "RNN_TANH":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0, out=a)
            new_h = a
        hs[t] = new_h if masks is None else h + masks[t] * (new_h - h)
        prev = t
    out = hs[:steps] if masks is None else hs[:steps] * masks
    if lstm:
        out = np.concatenate([out, cs[prev][None]], axis=0)
    elif masks is None:
        out = out.copy()
    xg = None

    parents = [x, h0] + ([c0] if lstm else []) + [w_ih, w_hh]
    parents += [p for p in (b_ih, b_hh) if p is not None]

    def backward(g):
        g = np.asarray(g, dtype)
        dy = g[:steps] if masks is None else g[:steps] * masks
        dh = np.zeros((n, hidden), dtype)
        dc = g[steps].copy() if lstm else None
        dxg = np.empty((steps, n, wi.shape[0]), dtype)
        dhg = dxg if not gru else np.empty_like(dxg)     # the h-side gate gradients
        hprev = np.empty((steps, n, hidden), dtype)      # the state entering each step
        back = order[::-1]
        for k, t in enumerate(back):
            before = back[k + 1] if k + 1 < steps else -1
            hprev[t] = hs[before]
            dht = dy[t] + dh
            if masks is not None:                        # masked samples: the state carries
                m = masks[t]
                carry_h = dht * (1 - m)
                dht = dht * m
                if lstm:
                    carry_c = dc * (1 - m)
                    dc = dc * m
            a = acts[t]
            d = dxg[t]
            if lstm:
                i, f, gg, o = (a[:, j * hidden:(j + 1) * hidden] for j in range(4))
                tc = tcs[t]
                dc = dc + dht * o * (1 - tc * tc)
                d[:, :hidden] = dc * gg * i * (1 - i)
                d[:, hidden:2 * hidden] = dc * cs[before] * f * (1 - f)
                d[:, 2 * hidden:3 * hidden] = dc * i * (1 - gg * gg)
                d[:, 3 * hidden:] = dht * tc * o * (1 - o)
                dc = dc * f
                if masks is not None:
                    dc += carry_c
                dh = d @ wh
            elif gru:
                r, z, nn_ = a[:, :hidden], a[:, hidden:2 * hidden], a[:, 2 * hidden:]
                dn = dht * (1 - z) * (1 - nn_ * nn_)
                d[:, :hidden] = dn * hn[t] * r * (1 - r)
                d[:, hidden:2 * hidden] = dht * (hprev[t] - nn_) * z * (1 - z)
                d[:, 2 * hidden:] = dn
                dhg[t, :, :2 * hidden] = d[:, :2 * hidden]
                dhg[t, :, 2 * hidden:] = dn * r
                dh = dht * z + dhg[t] @ wh
            else:
                d[...] = dht * (1 - a * a) if mode == "RNN_TANH" else dht * (a > 0)
                dh = d @ wh
            if masks is not None:
                dh += carry_h
        m_ = steps * n
        dxg2, dhg2 = dxg.reshape(m_, -1), dhg.reshape(m_, -1)
        dx = T.gemm(dxg2, wi).reshape(xd.shape)
        dwi = T.gemm(dxg2, np.ascontiguousarray(xd, dtype).reshape(m_, -1), trans_a=True)
        dwh = T.gemm(dhg2, hprev.reshape(m_, hidden), trans_a=True)
        grads = [dx, dh] + ([dc] if lstm else []) + [dwi, dwh]
        if b_ih is not None:
            grads.append(dxg2.sum(0))
        if b_hh is not None:
            grads.append(dhg2.sum(0))
        return grads
    return _node(out, tuple(parents), backward)


def _final_state(y, steps, lengths, reverse):
    """From a layer's outputs y (T, N, H) run with lengths: each sample's final state (the
    output at its last step; at step 0 for the reverse direction)."""
    if reverse:
        return y[0]
    last = np.asarray(lengths) - 1
    return y[last, np.arange(last.size)]


# ---------------------------------------------------------------- the sequence modules
class RNNBase(Module):
    """What RNN, LSTM and GRU share: the parameters per layer and direction, and the forward
    over layers (with dropout between them) and directions."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        _device(device)
        name = type(self).__name__
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive int, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing "
                             f"the probability of an element being zeroed, got {dropout!r}")
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        dtype = _dtype(dtype) or get_default_dtype()
        gates = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(directions):
                fan_in = input_size if layer == 0 else hidden_size * directions
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gates, fan_in)), ("weight_hh", (gates, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                for kind, shape in shapes:
                    setattr(self, kind + sfx, Parameter(np.empty(shape, dtype)))
                    self._flat_weights_names.append(kind + sfx)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            init.uniform_(getattr(self, name), -bound, bound)

    def flatten_parameters(self):
        """A no-op here (torch compacts cuDNN's weight buffer); programs call it."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        per = 4 if self.bias else 2
        w = self._flat_weights
        return [w[i:i + per] for i in range(0, len(w), per)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _check_state(self, h, expected, what):
        if not isinstance(h, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got "
                            f"{type(h).__name__}")
        if tuple(h.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {tuple(h.shape)}")

    def forward(self, input, hx=None):
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        packed = isinstance(input, PackedSequence)
        if packed:
            x, lengths = _padded_sorted(input)           # (T, B, *), longest first
            batched = True
            if x.ndim != 3:
                raise ValueError(f"{name}: expected packed data of shape (steps, input_size), "
                                 f"got {tuple(input.data.shape)}")
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got "
                                f"{type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D "
                                 f"instead")
            lengths = None
            batched = input.ndim == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {x.shape[-1]}")
        n = x.shape[1]
        directions = 2 if self.bidirectional else 1
        state_shape = (self.num_layers * directions, n, self.hidden_size)
        dtype = self.weight_ih_l0._data.dtype
        if x._data.dtype != dtype:
            raise TypeError(f"{name}: input must have the type of the weights ({dtype}), got "
                            f"{x._data.dtype}")
        if hx is None:
            zeros = Tensor(np.zeros(state_shape, dtype))
            h0, c0 = zeros, (zeros if lstm else None)
        else:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
                h0, c0 = hx
            else:
                h0, c0 = hx, None
            want = state_shape if batched else (state_shape[0], state_shape[2])
            self._check_state(h0, want, "hidden[0]" if lstm else "hidden")
            if lstm:
                self._check_state(c0, want, "hidden[1]")
            if not batched:
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if lstm else None
            if packed and input.sorted_indices is not None:   # the states follow the sort
                order = _ints(input.sorted_indices)
                h0 = h0[:, order]
                c0 = c0[:, order] if lstm else None
        output, h_n, c_n = self._layers(x, h0, c0, lengths)
        if packed:
            if input.unsorted_indices is not None:
                back = _ints(input.unsorted_indices)
                h_n = h_n[:, back]
                c_n = c_n[:, back] if lstm else None
            steps, batch = output.shape[:2]
            offsets, bs = _layout(input.batch_sizes)
            rows = np.concatenate([t * batch + np.arange(bs[t]) for t in range(bs.size)])
            data = output.reshape(steps * batch, output.shape[2])[rows]
            output = PackedSequence(data, input.batch_sizes, input.sorted_indices,
                                    input.unsorted_indices)
        elif batched and self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        return output, ((h_n, c_n) if lstm else h_n)

    def _layers(self, x, h0, c0, lengths):
        """The stacked layers over x (T, N, In): (output (T, N, D*H), h_n, c_n or None)."""
        lstm = self.mode == "LSTM"
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                idx = layer * directions + direction
                y = recurrent_layer(
                    self.mode, layer_input, h0[idx], c0[idx] if lstm else None,
                    getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx),
                    getattr(self, "bias_ih" + sfx, None), getattr(self, "bias_hh" + sfx, None),
                    reverse=bool(direction), lengths=lengths)
                steps = layer_input.shape[0]
                if lstm:
                    outs.append(y[:steps])
                    c_n.append(y[steps])
                else:
                    outs.append(y)
                if lengths is not None:                  # the state after each one's last step
                    h_n.append(_final_state(y, steps, lengths, bool(direction)))
                else:
                    h_n.append(y[0] if direction else y[steps - 1])
            layer_input = outs[0] if directions == 1 else cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        return layer_input, stack(h_n, 0), (stack(c_n, 0) if lstm else None)


class RNN(RNNBase):
    """Elman RNN, h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), as
    torch.nn.RNN. forward(input, h_0=None) -> (output, h_n)."""

    def __init__(self, *args, **kwargs):
        nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if len(args) > 3:                      # torch's positional order puts it fourth
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o, as torch.nn.LSTM.
    forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    as torch.nn.GRU. forward(input, h_0=None) -> (output, h_n)."""

    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)


# ---------------------------------------------------------------- single steps
class RNNCellBase(Module):
    _mode = None

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, mode=None):
        super().__init__()
        _device(device)
        self._mode = mode or self._mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dtype = _dtype(dtype) or get_default_dtype()
        gates = _GATES[self._mode] * hidden_size
        self.weight_ih = Parameter(np.empty((gates, input_size), dtype))
        self.weight_hh = Parameter(np.empty((gates, hidden_size), dtype))
        if bias:
            self.bias_ih = Parameter(np.empty(gates, dtype))
            self.bias_hh = Parameter(np.empty(gates, dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        return s + (", bias=False" if not self.bias else "")

    def _step(self, input, hx, cx):
        name = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got "
                             f"{getattr(input, 'ndim', type(input).__name__)}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got "
                               f"{input.shape[-1]} expected {self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        n = x.shape[0]
        dtype = self.weight_ih._data.dtype
        states = []
        for s in (hx, cx):
            if s is None:
                states.append(Tensor(np.zeros((n, self.hidden_size), dtype)))
            else:
                want = (n, self.hidden_size) if batched else (self.hidden_size,)
                if tuple(s.shape) != want:
                    raise RuntimeError(f"{name}: hidden state has shape {tuple(s.shape)}, "
                                       f"expected {want}")
                states.append(s if batched else s.unsqueeze(0))
        y = recurrent_layer(self._mode, x.unsqueeze(0), states[0],
                            states[1] if self._mode == "LSTM" else None, self.weight_ih,
                            self.weight_hh, self.bias_ih, self.bias_hh)
        outs = (y[0], y[1]) if self._mode == "LSTM" else (y[0],)
        return tuple(o if batched else o.squeeze(0) for o in outs)


class RNNCell(RNNCellBase):
    """One step of an Elman RNN, as torch.nn.RNNCell: forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, device, dtype,
                         mode="RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU")
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._step(input, hx, None)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step, as torch.nn.LSTMCell: forward(input, (h, c)=None) -> (h', c')."""
    _mode = "LSTM"

    def forward(self, input, hx=None):
        h, c = (None, None) if hx is None else hx
        return self._step(input, h, c)


class GRUCell(RNNCellBase):
    """One GRU step, as torch.nn.GRUCell: forward(input, hx=None) -> h'."""
    _mode = "GRU"

    def forward(self, input, hx=None):
        return self._step(input, hx, None)[0]

