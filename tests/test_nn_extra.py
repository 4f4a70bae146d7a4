"""The torch.nn pieces real programs use beyond the basics: recurrent layers and packed
sequences (nn/rnn.py, nn/rnn_utils.py), MultiheadAttention and the transformer layers
(nn/transformer.py), Conv1d, ConvTranspose1d and 1-D pooling (nn/layers1d.py), interpolate /
Upsample / PixelShuffle (nn/upsampling.py), InstanceNorm and RMSNorm (nn/norms.py), F.pad's modes
and the padding layers (nn/padding.py), affine_grid / grid_sample (nn/sampling.py), EmbeddingBag,
LocalResponseNorm, adaptive max pooling, Unfold / Fold, Bilinear and friends (nn/more_layers.py,
nn/misc_layers.py), more losses (nn/losses_extra.py), more initializers (nn/init_extra.py).

Against PyTorch (skipped without it): a torch module's state dict loaded into the fastnn module,
then outputs and the gradients of inputs and parameters compared, in float32 (to float32
rounding) and float64 (to ~1e-10). Without PyTorch: the hand-written backwards (BPTT, with and
without per-sample lengths; grid_sample) against finite differences in float64 on every CPU
backend, state-dict keys, shapes, training, and bad input."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import functional as F
from fastnn.nn.rnn import recurrent_layer

from conftest import numeric_grad

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def _rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _arr(t):
    return np.asarray(t._data if isinstance(t, fastnn.Tensor) else t)


def _load_torch_weights(tm, fm, dtype):
    """Copy torch module tm's state dict into fastnn module fm; the keys must be the same, in
    the same order."""
    sd = {k: v.detach().numpy().astype(dtype) if v.is_floating_point() else v.numpy()
          for k, v in tm.state_dict().items()}
    assert list(sd) == list(fm.state_dict())
    if dtype == np.float64:
        fm.double()
    fm.load_state_dict({k: fastnn.tensor(v) for k, v in sd.items()})
    tm.to(torch.float64 if dtype == np.float64 else torch.float32)


def _flat(out):
    """The tensors of a module's result, flattened ((out, (h, c)) -> [out, h, c]), Nones out."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [] if out is None else [out]


def _compare_module(tm, fm, inputs, dtype, call=None, **kw):
    """Run tm and fm on the same inputs (arrays; None passes through, bool arrays go as masks
    without gradients); compare every output and every gradient (inputs, then parameters) of
    a fixed random weighting of the outputs."""
    call = call or (lambda m, *a: m(*a, **kw))
    tol = TOL[dtype]

    def make(lib, a):
        if a is None:
            return None
        if a.dtype == bool:
            return lib.tensor(a)
        return lib.tensor(a.astype(dtype), requires_grad=True)
    tin = [make(torch, a) for a in inputs]
    fin = [make(fastnn, a) for a in inputs]
    touts, fouts = _flat(call(tm, *tin)), _flat(call(fm, *fin))
    assert len(touts) == len(fouts)
    tloss = floss = 0
    for i, (to, fo) in enumerate(zip(touts, fouts)):
        assert tuple(to.shape) == tuple(fo.shape)
        assert _arr(fo).dtype == dtype
        np.testing.assert_allclose(_arr(fo), to.detach().numpy(), **tol)
        w = _rnd(*to.shape, seed=10 + i).astype(dtype)
        tloss = tloss + (to * torch.tensor(w)).sum()
        floss = floss + (fo * fastnn.tensor(w)).sum()
    tloss.backward()
    floss.backward()
    for t, f in zip(tin, fin):
        if t is not None and t.requires_grad:
            np.testing.assert_allclose(_arr(f.grad), t.grad.numpy(), **tol)
    if not hasattr(tm, "named_parameters"):
        return
    for (name, tp), fp in zip(tm.named_parameters(), fm.parameters()):
        assert fp.grad is not None, name
        np.testing.assert_allclose(_arr(fp.grad), tp.grad.numpy(), err_msg=name, **tol)


# ================================================================ recurrent layers
RNN_CASES = {
    "lstm": ("LSTM", dict()),
    "lstm_2layers_bidir_batch_first": ("LSTM", dict(num_layers=2, bidirectional=True,
                                                    batch_first=True)),
    "lstm_no_bias": ("LSTM", dict(bias=False)),
    "gru": ("GRU", dict()),
    "gru_2layers_bidir": ("GRU", dict(num_layers=2, bidirectional=True)),
    "rnn_tanh_batch_first": ("RNN", dict(batch_first=True)),
    "rnn_relu_2layers": ("RNN", dict(nonlinearity="relu", num_layers=2)),
}


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(RNN_CASES))
def test_rnn_matches_torch(case, dtype):
    cls, kw = RNN_CASES[case]
    tm = getattr(torch.nn, cls)(3, 5, **kw)
    fm = getattr(nn, cls)(3, 5, **kw)
    _load_torch_weights(tm, fm, dtype)
    d = 2 if kw.get("bidirectional") else 1
    layers = kw.get("num_layers", 1)
    x = _rnd(2, 4, 3) if kw.get("batch_first") else _rnd(4, 2, 3)
    _compare_module(tm, fm, [x], dtype)                         # zero initial state
    h0 = _rnd(layers * d, 2, 5, seed=1)
    if cls == "LSTM":
        c0 = _rnd(layers * d, 2, 5, seed=2)
        _compare_module(tm, fm, [x, h0, c0], dtype, call=lambda m, x, h, c: m(x, (h, c)))
    else:
        _compare_module(tm, fm, [x, h0], dtype)


@needs_torch
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_rnn_unbatched_input_matches_torch(cls):
    tm, fm = getattr(torch.nn, cls)(3, 4, num_layers=2), getattr(nn, cls)(3, 4, num_layers=2)
    _load_torch_weights(tm, fm, np.float64)
    _compare_module(tm, fm, [_rnd(6, 3)], np.float64)


@needs_torch
@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "RNNCell"])
def test_rnn_cells_match_torch(cls):
    tm, fm = getattr(torch.nn, cls)(3, 4), getattr(nn, cls)(3, 4)
    _load_torch_weights(tm, fm, np.float64)
    x, h = _rnd(2, 3), _rnd(2, 4, seed=1)
    if cls == "LSTMCell":
        _compare_module(tm, fm, [x, h, _rnd(2, 4, seed=2)], np.float64,
                        call=lambda m, x, h, c: m(x, (h, c)))
    else:
        _compare_module(tm, fm, [x, h], np.float64)
    _compare_module(tm, fm, [x], np.float64)                    # no state: zeros


@pytest.fixture
def backend(current_cpu_backend):
    return current_cpu_backend


@pytest.mark.parametrize("lengths", [None, (4, 2)], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_recurrent_layer_backward_matches_finite_differences(mode, reverse, lengths, backend):
    """The hand-written BPTT of recurrent_layer against central differences of its forward
    (float64), for every input: sequence, initial states, weights and biases; also with
    per-sample lengths (the second sample stops after 2 steps)."""
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    steps, n, nin, hidden = 4, 2, 3, 3
    arrays = [_rnd(steps, n, nin), _rnd(n, hidden, seed=1) * 0.5]
    if mode == "LSTM":
        arrays.append(_rnd(n, hidden, seed=2) * 0.5)
    arrays += [_rnd(gates * hidden, nin, seed=3) * 0.6, _rnd(gates * hidden, hidden, seed=4) * 0.6,
               _rnd(gates * hidden, seed=5) * 0.3, _rnd(gates * hidden, seed=6) * 0.3]
    out_shape = (steps + (mode == "LSTM"), n, hidden)
    weight = _rnd(*out_shape, seed=7)

    def call(ts):
        c0 = ts[2] if mode == "LSTM" else None
        rest = ts[3:] if mode == "LSTM" else ts[2:]
        return recurrent_layer(mode, ts[0], ts[1], c0, *rest, reverse=reverse, lengths=lengths)

    ts = [fastnn.tensor(a, requires_grad=True) for a in arrays]
    (call(ts) * fastnn.tensor(weight)).sum().backward()

    def loss():
        with fastnn.no_grad():
            return float((_arr(call([fastnn.tensor(a) for a in arrays])) * weight).sum())
    for i, (a, t) in enumerate(zip(arrays, ts)):
        np.testing.assert_allclose(_arr(t.grad), numeric_grad(loss, a), rtol=1e-6, atol=1e-8,
                                   err_msg=f"input {i}")


@needs_torch
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("cls,kw", [("LSTM", dict(num_layers=2, bidirectional=True)),
                                    ("GRU", dict(bidirectional=True, batch_first=True)),
                                    ("RNN", dict(batch_first=True))])
def test_rnn_on_packed_sequences_matches_torch(cls, kw, enforce_sorted):
    """pack_padded_sequence -> RNN with an initial state -> pad_packed_sequence: outputs, final
    states and all gradients as torch's, sorted or not."""
    import torch.nn.utils.rnn as TR
    import fastnn.nn.utils.rnn as FR
    tm, fm = getattr(torch.nn, cls)(3, 4, **kw), getattr(nn, cls)(3, 4, **kw)
    _load_torch_weights(tm, fm, np.float64)
    bf = kw.get("batch_first", False)
    lengths = [5, 3, 3, 1] if enforce_sorted else [3, 5, 1, 3]
    states = (2 if kw.get("bidirectional") else 1) * kw.get("num_layers", 1)

    def call(m, x, h, c=None):
        R = TR if m is tm else FR
        packed = R.pack_padded_sequence(x, lengths, batch_first=bf,
                                        enforce_sorted=enforce_sorted)
        out, hn = m(packed, h if c is None else (h, c))
        assert isinstance(out, R.PackedSequence)
        np.testing.assert_array_equal(_arr(out.batch_sizes), [4, 3, 3, 1, 1])
        padded, lens = R.pad_packed_sequence(out, batch_first=bf)
        np.testing.assert_array_equal(_arr(lens), lengths)
        return padded, hn
    x = _rnd(4, 5, 3) if bf else _rnd(5, 4, 3)
    ins = [x, _rnd(states, 4, 4, seed=1)] + ([_rnd(states, 4, 4, seed=2)] if cls == "LSTM"
                                            else [])
    _compare_module(tm, fm, ins, np.float64, call=call)


@needs_torch
def test_rnn_utils_match_torch():
    import torch.nn.utils.rnn as TR
    from fastnn.nn.utils.rnn import pack_sequence, pad_sequence, unpack_sequence
    seqs = [_rnd(n, 2, seed=n) for n in (2, 4, 3)]
    for bf in (False, True):
        for side in ("right", "left"):
            np.testing.assert_array_equal(
                _arr(pad_sequence([fastnn.tensor(s) for s in seqs], bf, -1.0, side)),
                TR.pad_sequence([torch.tensor(s) for s in seqs], bf, -1.0, side).numpy())
    tp = TR.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    fp = pack_sequence([fastnn.tensor(s) for s in seqs], enforce_sorted=False)
    for a, b in zip(tp, fp):
        np.testing.assert_array_equal(_arr(b), a.numpy())
    assert all(np.array_equal(_arr(u), s) for u, s in zip(unpack_sequence(fp), seqs))


def test_pack_padded_sequence_errors():
    from fastnn.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    x = fastnn.randn(4, 3, 2)
    with pytest.raises(RuntimeError, match="enforce_sorted"):
        pack_padded_sequence(x, [2, 4, 1])
    with pytest.raises(ValueError, match="batch_size"):
        pack_padded_sequence(x, [4, 2])
    with pytest.raises(RuntimeError, match="greater than 0"):
        pack_padded_sequence(x, [4, 2, 0])
    with pytest.raises(TypeError, match="PackedSequence"):
        pad_packed_sequence(x)
    with pytest.raises(ValueError, match="total_length"):
        pad_packed_sequence(pack_padded_sequence(x, [4, 2, 1]), total_length=3)


def test_rnn_state_dict_keys_are_torchs():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    keys = [f"{w}_l{k}{s}" for k in range(2) for s in ("", "_reverse")
            for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(m.state_dict()) == keys
    assert m.weight_ih_l0.shape == (16, 3) and m.weight_ih_l1.shape == (16, 8)
    assert m.weight_hh_l1_reverse.shape == (16, 4) and m.bias_hh_l0.shape == (16,)
    assert list(nn.GRU(3, 4, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert nn.GRU(3, 4).weight_ih_l0.shape == (12, 3)
    assert list(nn.LSTMCell(3, 4).state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    bound = 1 / math.sqrt(4)
    assert all(np.abs(_arr(p)).max() <= bound for p in m.parameters())
    assert all(_arr(p).dtype == np.float32 for p in m.parameters())


def test_lstm_shapes_and_final_states():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = fastnn.randn(5, 7, 3)
    out, (h, c) = m(x)
    assert out.shape == (5, 7, 8) and h.shape == (4, 5, 4) and c.shape == (4, 5, 4)
    # the forward direction's final h is the last output step, the reverse one's the first
    np.testing.assert_allclose(_arr(h)[2], _arr(out)[:, -1, :4], rtol=1e-6)
    np.testing.assert_allclose(_arr(h)[3], _arr(out)[:, 0, 4:], rtol=1e-6)
    m.flatten_parameters()                                      # accepted, as programs call it
    assert len(m.all_weights) == 4 and len(m.all_weights[0]) == 4


def test_lstm_dropout_between_layers_only_in_training():
    fastnn.manual_seed(0)
    m = nn.LSTM(3, 6, num_layers=2, dropout=0.5)
    x = fastnn.randn(4, 2, 3)
    a, b = m(x)[0], m(x)[0]
    assert not np.allclose(_arr(a), _arr(b))                    # different dropout masks
    m.eval()
    np.testing.assert_array_equal(_arr(m(x)[0]), _arr(m(x)[0]))


def test_lstm_learns_a_sequence_task():
    """An LSTM fits 'is the running sum of the sequence positive' by Adam; the loss falls."""
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10, 1)).astype(np.float32)
    y = (x.sum(1)[:, 0] > 0).astype(np.int64)
    lstm, head = nn.LSTM(1, 16, batch_first=True), nn.Linear(16, 2)
    opt = fastnn.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.02)
    losses = []
    for _ in range(60):
        out, (h, _) = lstm(fastnn.tensor(x))
        loss = F.cross_entropy(head(h[-1]), fastnn.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_rnn_bad_input_raises():
    m = nn.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="input_size"):
        m(fastnn.randn(5, 2, 7))
    with pytest.raises(ValueError, match="2D or 3D"):
        m(fastnn.randn(5))
    with pytest.raises(RuntimeError, match="Expected hidden"):
        m(fastnn.randn(5, 2, 3), (fastnn.zeros(1, 3, 4), fastnn.zeros(1, 2, 4)))
    with pytest.raises(TypeError, match="tuple"):
        m(fastnn.randn(5, 2, 3), fastnn.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="float64"):
        nn.GRU(3, 4, dtype=fastnn.float64)(fastnn.randn(5, 2, 3))
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(RuntimeError, match="input_size"):
        nn.GRUCell(3, 4)(fastnn.randn(2, 5))


# ================================================================ multi-head attention
MHA_MASKS = {
    "none": {},
    "bool_attn_mask": dict(attn_mask=np.triu(np.ones((5, 6), bool), 2)),
    "float_attn_mask_3d": dict(attn_mask=_rnd(4, 5, 6, seed=3)),
    "key_padding_mask": dict(key_padding_mask=np.array([[False] * 6, [False] * 4 + [True] * 2])),
    "both": dict(attn_mask=np.triu(np.ones((5, 6), bool), 2),
                 key_padding_mask=np.array([[False] * 6, [False] * 3 + [True] * 3])),
}


@needs_torch
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", sorted(MHA_MASKS))
def test_multihead_attention_matches_torch(masks, batch_first, need_weights, average):
    dtype = np.float32
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first)
    fm = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    _load_torch_weights(tm, fm, dtype)
    q = _rnd(2, 5, 8) if batch_first else _rnd(5, 2, 8)
    kv = _rnd(2, 6, 8, seed=1) if batch_first else _rnd(6, 2, 8, seed=1)
    m = MHA_MASKS[masks]
    names = sorted(m)
    masks_in = [m[k] if m[k].dtype == bool else m[k].astype(dtype) for k in names]

    def call(mod, q, kv, *mk):                     # a float mask gets a gradient too
        return mod(q, kv, kv, need_weights=need_weights, average_attn_weights=average,
                   **dict(zip(names, mk)))
    _compare_module(tm, fm, [q, kv] + masks_in, dtype, call=call)


@needs_torch
def test_multihead_attention_self_attention_kdim_and_unbatched_match_torch():
    tm, fm = torch.nn.MultiheadAttention(6, 3), nn.MultiheadAttention(6, 3)
    _load_torch_weights(tm, fm, np.float64)
    _compare_module(tm, fm, [_rnd(4, 6)], np.float64, call=lambda m, x: m(x, x, x))  # unbatched
    _compare_module(tm, fm, [_rnd(4, 2, 6)], np.float64,
                    call=lambda m, x: m(x, x, x, attn_mask=torch.ones(4, 4).triu(1).bool()
                                        if m is tm else fastnn.ones(4, 4).triu(1).bool(),
                                        is_causal=True))
    tm = torch.nn.MultiheadAttention(6, 2, kdim=4, vdim=3, bias=False, batch_first=True)
    fm = nn.MultiheadAttention(6, 2, kdim=4, vdim=3, bias=False, batch_first=True)
    assert list(fm.state_dict()) == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                     "out_proj.weight"]
    _load_torch_weights(tm, fm, np.float64)
    _compare_module(tm, fm, [_rnd(2, 3, 6), _rnd(2, 5, 4, seed=1), _rnd(2, 5, 3, seed=2)],
                    np.float64)


def test_multihead_attention_state_dict_and_init():
    m = nn.MultiheadAttention(8, 2)
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                    "out_proj.bias"]
    assert m.in_proj_weight.shape == (24, 8) and m.head_dim == 4
    assert not _arr(m.in_proj_bias).any() and not _arr(m.out_proj.bias).any()
    bound = math.sqrt(6 / (24 + 8))                             # xavier-uniform
    assert 0.5 * bound < np.abs(_arr(m.in_proj_weight)).max() <= bound


def test_multihead_attention_key_padding_mask_hides_keys():
    """Changing a padded key's value does not change the output; changing another one does."""
    fastnn.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, batch_first=True)
    q, kv = fastnn.randn(1, 3, 4), _rnd(1, 5, 4, seed=1).astype(np.float32)
    pad = fastnn.tensor(np.array([[False, False, False, True, True]]))
    base = _arr(m(q, fastnn.tensor(kv), fastnn.tensor(kv), key_padding_mask=pad)[0])
    kv2 = kv.copy()
    kv2[0, 4] += 10
    same = _arr(m(q, fastnn.tensor(kv2), fastnn.tensor(kv2), key_padding_mask=pad)[0])
    np.testing.assert_allclose(same, base, rtol=1e-6)
    kv2[0, 0] += 10
    assert not np.allclose(_arr(m(q, fastnn.tensor(kv2), fastnn.tensor(kv2),
                                  key_padding_mask=pad)[0]), base)


def test_multihead_attention_bad_input_raises():
    with pytest.raises(AssertionError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    m = nn.MultiheadAttention(4, 2)
    x = fastnn.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="is_causal"):
        m(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=fastnn.zeros(2, 2))
    with pytest.raises(AssertionError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=fastnn.zeros(3, 3).bool())
    with pytest.raises(AssertionError, match="embedding dimension"):
        m(fastnn.randn(3, 2, 5), x, x)
    with pytest.raises(TypeError, match="bool and floating"):
        m(x, x, x, attn_mask=fastnn.zeros(3, 3).long())


# ================================================================ transformer layers
@needs_torch
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_matches_torch(activation, norm_first):
    kw = dict(dim_feedforward=16, dropout=0.0, activation=activation, norm_first=norm_first,
              batch_first=True)
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                     norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    fm = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, **kw), 2, norm=nn.LayerNorm(8))
    _load_torch_weights(tm, fm, np.float32)
    pad = np.zeros((2, 5), bool)
    pad[1, 3:] = True

    def call(m, x, pad):
        lib = torch if m is tm else fastnn
        mask = (torch.nn.Transformer if m is tm else nn.Transformer) \
            .generate_square_subsequent_mask(5)
        return m(x, mask=mask, src_key_padding_mask=lib.tensor(_arr(pad) if lib is fastnn
                                                                else pad.numpy()))
    _compare_module(tm, fm, [_rnd(2, 5, 8), pad], np.float32, call=call)


@needs_torch
def test_transformer_decoder_and_full_transformer_match_torch():
    kw = dict(dim_feedforward=16, dropout=0.0)
    tm = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, norm_first=True,
                                                                      **kw), 2)
    fm = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, norm_first=True, **kw), 2)
    _load_torch_weights(tm, fm, np.float64)
    _compare_module(tm, fm, [_rnd(4, 2, 8), _rnd(6, 2, 8, seed=1)], np.float64)
    tm = torch.nn.Transformer(8, 2, 1, 2, batch_first=True, **kw)
    fm = nn.Transformer(8, 2, 1, 2, batch_first=True, **kw)
    _load_torch_weights(tm, fm, np.float32)

    def call(m, src, tgt):
        return m(src, tgt, tgt_mask=m.generate_square_subsequent_mask(4))
    _compare_module(tm, fm, [_rnd(2, 6, 8), _rnd(2, 4, 8, seed=1)], np.float32, call=call)
    np.testing.assert_array_equal(
        _arr(nn.Transformer.generate_square_subsequent_mask(4)),
        torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())


def test_transformer_layers_state_dict_keys_and_dropout():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    assert list(layer.state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
        "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
        "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    enc = nn.TransformerEncoder(layer, 3)
    assert len(enc.layers) == 3 and enc.layers[0] is not enc.layers[1]
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    assert "layers.2.norm2.bias" in enc.state_dict()
    mask = _arr(nn.Transformer.generate_square_subsequent_mask(3))
    assert mask.dtype == np.float32 and np.isneginf(mask[0, 1]) and mask[1, 0] == 0
    x = fastnn.randn(4, 2, 8)
    a, b = _arr(enc(x)), _arr(enc(x))                            # training: dropout 0.1
    assert not np.allclose(a, b)
    enc.eval()
    np.testing.assert_array_equal(_arr(enc(x)), _arr(enc(x)))
    with pytest.raises(RuntimeError, match="relu/gelu"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")


def test_transformer_encoder_causal_mask_makes_outputs_causal():
    """With the square subsequent mask, output position t depends on inputs <= t only."""
    fastnn.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                           batch_first=True), 2)
    mask = nn.Transformer.generate_square_subsequent_mask(5)
    x = _rnd(1, 5, 8).astype(np.float32)
    base = _arr(enc(fastnn.tensor(x), mask=mask))
    x[0, 3] += 5
    moved = _arr(enc(fastnn.tensor(x), mask=mask))
    np.testing.assert_allclose(moved[0, :3], base[0, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(moved[0, 3:], base[0, 3:])


# ================================================================ 1-D layers
@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_and_pool1d_modules_match_torch(dtype):
    tm = torch.nn.Sequential(torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
                             torch.nn.ReLU(), torch.nn.MaxPool1d(2, ceil_mode=True),
                             torch.nn.Conv1d(6, 5, 2, padding="same", dilation=1, bias=False),
                             torch.nn.AvgPool1d(3, 1, 1), torch.nn.AdaptiveAvgPool1d(2))
    fm = nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU(),
                       nn.MaxPool1d(2, ceil_mode=True),
                       nn.Conv1d(6, 5, 2, padding="same", dilation=1, bias=False),
                       nn.AvgPool1d(3, 1, 1), nn.AdaptiveAvgPool1d(2))
    _load_torch_weights(tm, fm, dtype)
    _compare_module(tm, fm, [_rnd(3, 4, 11)], dtype)
    _compare_module(tm, fm, [_rnd(4, 9)], dtype)                 # unbatched (C, L)


@needs_torch
def test_max_pool1d_indices_match_torch():
    x = _rnd(2, 3, 10)
    ty, ti = torch.nn.functional.max_pool1d(torch.tensor(x), 3, 2, 1, return_indices=True)
    fy, fi = F.max_pool1d(fastnn.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(_arr(fi), ti.numpy())
    np.testing.assert_array_equal(_arr(fy), ty.numpy())


def test_conv1d_shapes_init_and_errors():
    m = nn.Conv1d(4, 8, 5, padding=2)
    assert m.weight.shape == (8, 4, 5) and m.kernel_size == (5,) and m.stride == (1,)
    assert np.abs(_arr(m.weight)).max() <= 1 / math.sqrt(20)
    assert m(fastnn.randn(2, 4, 16)).shape == (2, 8, 16)
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv1d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="3-D"):
        m(fastnn.randn(2, 4, 5, 5))


# ================================================================ resizing
INTERP = [("nearest", None, dict(scale_factor=2)), ("nearest", None, dict(size=(7, 10))),
          ("nearest", None, dict(scale_factor=1.7)), ("nearest", None, dict(size=(2, 3))),
          ("nearest-exact", None, dict(scale_factor=(1.5, 0.5))),
          ("bilinear", False, dict(scale_factor=2)), ("bilinear", False, dict(size=(7, 10))),
          ("bilinear", True, dict(size=(7, 10))), ("bilinear", True, dict(scale_factor=0.6)),
          ("bilinear", False, dict(scale_factor=1.3, recompute_scale_factor=True)),
          ("area", None, dict(size=(3, 4))), ("area", None, dict(scale_factor=1.5))]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,align,kw", INTERP, ids=[f"{m}-{a}-{sorted(k.items())}"
                                                       for m, a, k in INTERP])
def test_interpolate_matches_torch(mode, align, kw, dtype):
    class Resize:
        def __init__(self, F):
            self.F = F

        def __call__(self, x):
            return self.F.interpolate(x, mode=mode, align_corners=align, **kw)
    _compare_module(Resize(torch.nn.functional), Resize(F), [_rnd(2, 3, 5, 6)], dtype,
                    call=lambda m, x: m(x))


@needs_torch
def test_interpolate_1d_3d_and_upsample_modules_match_torch():
    for mode, shape, kw in [("linear", (2, 3, 7), dict(scale_factor=2.5)),
                            ("linear", (2, 3, 7), dict(size=4, align_corners=True)),
                            ("nearest", (2, 3, 7), dict(size=12)),
                            ("trilinear", (1, 2, 3, 4, 5), dict(scale_factor=2)),
                            ("nearest", (1, 2, 3, 4, 5), dict(size=(5, 3, 8)))]:
        _compare_module(torch.nn.Upsample(mode=mode, **kw), nn.Upsample(mode=mode, **kw),
                        [_rnd(*shape)], np.float64)
    for name in ("UpsamplingNearest2d", "UpsamplingBilinear2d"):
        _compare_module(getattr(torch.nn, name)(scale_factor=2), getattr(nn, name)(scale_factor=2),
                        [_rnd(1, 2, 3, 4)], np.float64)
    _compare_module(torch.nn.PixelShuffle(2), nn.PixelShuffle(2), [_rnd(2, 8, 3, 5)], np.float64)
    _compare_module(torch.nn.PixelUnshuffle(3), nn.PixelUnshuffle(3), [_rnd(2, 6, 9)],
                    np.float64)


def test_interpolate_known_values_and_errors():
    x = fastnn.tensor(np.arange(4.0).reshape(1, 1, 2, 2))
    np.testing.assert_array_equal(_arr(F.interpolate(x, scale_factor=2))[0, 0, 0],
                                  [0, 0, 1, 1])
    y = _arr(F.interpolate(x, size=(3, 3), mode="bilinear", align_corners=True))[0, 0]
    np.testing.assert_allclose(y, [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    ps = nn.PixelShuffle(2)(fastnn.randn(1, 8, 3, 3))
    assert ps.shape == (1, 2, 6, 6)
    np.testing.assert_array_equal(_arr(nn.PixelUnshuffle(2)(ps)).shape, (1, 8, 3, 3))
    with pytest.raises(ValueError, match="only one"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="only one"):
        F.interpolate(x)
    with pytest.raises(NotImplementedError, match="bilinear mode needs 4D"):
        F.interpolate(fastnn.randn(1, 2, 3), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="not supported"):
        F.interpolate(x, scale_factor=2, mode="cubic")
    with pytest.raises(RuntimeError, match="divisible"):
        F.pixel_shuffle(fastnn.randn(1, 6, 2, 2), 2)


# ================================================================ instance and RMS norm
@needs_torch
@pytest.mark.parametrize("cls,shape", [("InstanceNorm1d", (3, 4, 7)),
                                       ("InstanceNorm2d", (3, 4, 5, 6)),
                                       ("InstanceNorm2d", (4, 5, 6))])
def test_instance_norm_matches_torch_in_train_and_eval(cls, shape):
    for kw in (dict(), dict(affine=True, track_running_stats=True, momentum=0.2)):
        tm, fm = getattr(torch.nn, cls)(4, **kw), getattr(nn, cls)(4, **kw)
        _load_torch_weights(tm, fm, np.float64)
        for step in range(2):
            _compare_module(tm, fm, [_rnd(*shape, seed=step) * 2 + 1], np.float64)
        for (name, tb), fb in zip(tm.named_buffers(), fm.buffers()):
            np.testing.assert_allclose(_arr(fb), tb.numpy(), rtol=1e-10, err_msg=name)
        tm.eval()
        fm.eval()
        if kw:
            tm.weight.grad = fm.weight.grad = tm.bias.grad = fm.bias.grad = None
        _compare_module(tm, fm, [_rnd(*shape, seed=5)], np.float64)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_matches_torch(dtype):
    tm, fm = torch.nn.RMSNorm((4, 6)), nn.RMSNorm((4, 6))
    tm.weight.data = torch.tensor(1 + _rnd(4, 6, seed=1))
    _load_torch_weights(tm, fm, dtype)
    _compare_module(tm, fm, [_rnd(3, 4, 6)], dtype)
    tm, fm = torch.nn.RMSNorm(6, eps=1e-3, elementwise_affine=False), \
        nn.RMSNorm(6, eps=1e-3, elementwise_affine=False)
    _compare_module(tm, fm, [_rnd(2, 5, 6) * 0.01], dtype)


def test_norms_state_dicts_and_errors():
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                    "num_batches_tracked"]
    assert list(nn.InstanceNorm2d(3).state_dict()) == []
    assert list(nn.RMSNorm(5).state_dict()) == ["weight"]
    y = _arr(nn.InstanceNorm2d(3)(fastnn.randn(2, 3, 4, 4)))
    np.testing.assert_allclose(y.mean((2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var((2, 3)), 1, rtol=1e-3)
    with pytest.raises(ValueError, match="4D"):
        nn.InstanceNorm2d(3)(fastnn.randn(2, 3))
    with pytest.raises(ValueError, match="spatial element"):
        F.instance_norm(fastnn.randn(2, 3, 1))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        nn.RMSNorm(5)(fastnn.randn(2, 4))


# ======================================================= padding, transposed 1-D conv, small layers
def _functional_case(fn):
    """A functional call as a parameterless 'module' for _compare_module."""
    class Call:
        def __init__(self, F):
            self.F = F

        def __call__(self, *a):
            return fn(self.F, *a)
    return Call


FUNCTIONAL = {
    "pad_reflect_2d": (lambda F, x: F.pad(x, (2, 1, 3, 4), mode="reflect"), [(2, 3, 5, 6)]),
    "pad_replicate_2d": (lambda F, x: F.pad(x, (2, 1, 0, 4), mode="replicate"), [(2, 3, 5, 6)]),
    "pad_circular_2d": (lambda F, x: F.pad(x, (2, 1, 3, 4), mode="circular"), [(2, 3, 5, 6)]),
    "pad_reflect_1d_unbatched": (lambda F, x: F.pad(x, (3, 0), mode="reflect"), [(3, 7)]),
    "pad_constant": (lambda F, x: F.pad(x, (1, 2, 0, 1), value=2.5), [(2, 3, 4)]),
    "conv_transpose1d": (lambda F, x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1,
                                                               output_padding=1, dilation=2),
                         [(2, 3, 7), (3, 4, 3), (4,)]),
    "prelu_channels": (lambda F, x, w: F.prelu(x, w), [(2, 3, 5, 6), (3,)]),
    "prelu_one": (lambda F, x, w: F.prelu(x, w), [(2, 3, 4), (1,)]),
    "hardshrink": (lambda F, x: F.hardshrink(x, 0.7), [(4, 5)]),
    "softshrink": (lambda F, x: F.softshrink(x, 0.7), [(4, 5)]),
    "tanhshrink": (lambda F, x: F.tanhshrink(x), [(4, 5)]),
    "pairwise_distance": (lambda F, a, b: F.pairwise_distance(a, b, 3.0), [(4, 5), (4, 5)]),
}


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(FUNCTIONAL))
def test_more_functional_matches_torch(case, dtype):
    fn, shapes = FUNCTIONAL[case]
    Call = _functional_case(fn)
    _compare_module(Call(torch.nn.functional), Call(F),
                    [_rnd(*s, seed=i) for i, s in enumerate(shapes)], dtype,
                    call=lambda m, *a: m(*a))


@needs_torch
def test_padding_modules_conv_transpose1d_and_prelu_match_torch():
    for name, args in [("ReflectionPad2d", (2,)), ("ReplicationPad1d", ((1, 3),)),
                       ("CircularPad2d", ((1, 0, 2, 1),)), ("ZeroPad2d", ((1, 2, 0, 1),)),
                       ("ConstantPad2d", (1, -2.0)), ("ReflectionPad1d", (2,)),
                       ("ZeroPad1d", (3,)), ("ConstantPad1d", ((0, 2), 1.5)),
                       ("ReplicationPad2d", (1,)), ("CircularPad1d", (2,))]:
        shape = (2, 3, 5, 6) if name.endswith("2d") else (2, 3, 7)
        _compare_module(getattr(torch.nn, name)(*args), getattr(nn, name)(*args), [_rnd(*shape)],
                        np.float64, call=lambda m, x: m(x))
    tm, fm = torch.nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2), \
        nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2)
    assert fm.weight.shape == (4, 3, 3)
    _load_torch_weights(tm, fm, np.float32)
    _compare_module(tm, fm, [_rnd(2, 4, 5)], np.float32)
    _compare_module(tm, fm, [_rnd(2, 4, 5)], np.float32, call=lambda m, x: m(x, output_size=[12]))
    tm, fm = torch.nn.PReLU(3), nn.PReLU(3)
    assert list(fm.state_dict()) == ["weight"] and np.all(_arr(fm.weight) == 0.25)
    _compare_module(tm, fm, [_rnd(2, 3, 4)], np.float32)
    _compare_module(torch.nn.CosineSimilarity(dim=-1), nn.CosineSimilarity(dim=-1),
                    [_rnd(3, 4), _rnd(3, 4, seed=1)], np.float64)
    _compare_module(torch.nn.PairwiseDistance(keepdim=True), nn.PairwiseDistance(keepdim=True),
                    [_rnd(3, 4), _rnd(3, 4, seed=1)], np.float64)


def test_padding_known_values_and_errors():
    x = fastnn.tensor(np.array([[[1.0, 2.0, 3.0]]]))
    np.testing.assert_array_equal(_arr(F.pad(x, (2, 2), mode="reflect"))[0, 0],
                                  [3, 2, 1, 2, 3, 2, 1])
    np.testing.assert_array_equal(_arr(F.pad(x, (2, 1), mode="replicate"))[0, 0],
                                  [1, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(_arr(F.pad(x, (1, 2), mode="circular"))[0, 0],
                                  [3, 1, 2, 3, 1, 2])
    with pytest.raises(RuntimeError, match="less than"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="unknown padding mode"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(RuntimeError, match="channel size"):
        nn.PReLU(4)(fastnn.randn(2, 3, 5))


# ================================================================ affine_grid and grid_sample
GRID = np.random.default_rng(3).uniform(-1.2, 1.2, (2, 4, 7, 2))    # no ties at .5 or integers


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode,padding_mode", [("bilinear", "zeros"), ("bilinear", "border"),
                                               ("nearest", "zeros"), ("nearest", "border")])
def test_grid_sample_matches_torch(mode, padding_mode, align_corners, dtype):
    Call = _functional_case(lambda F, x, g: F.grid_sample(x, g, mode=mode,
                                                          padding_mode=padding_mode,
                                                          align_corners=align_corners))
    _compare_module(Call(torch.nn.functional), Call(F), [_rnd(2, 3, 5, 6), GRID], dtype,
                    call=lambda m, *a: m(*a))


@needs_torch
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_torch(align_corners):
    theta = np.array([[[0.9, 0.2, 0.1], [-0.3, 1.1, -0.2]], [[1.2, -0.1, 0.3], [0.2, 0.8, 0.05]]])
    Call = _functional_case(lambda F, t: F.affine_grid(t, (2, 3, 4, 7), align_corners))
    _compare_module(Call(torch.nn.functional), Call(F), [theta], np.float64,
                    call=lambda m, *a: m(*a))


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_grid_sample_backward_matches_finite_differences(padding_mode, backend):
    x, grid = _rnd(1, 2, 4, 5), GRID[:1, :3, :4] * 0.9
    weight = _rnd(1, 2, 3, 4, seed=5)
    xt, gt = fastnn.tensor(x, requires_grad=True), fastnn.tensor(grid, requires_grad=True)
    (F.grid_sample(xt, gt, padding_mode=padding_mode) * fastnn.tensor(weight)).sum().backward()

    def loss():
        return float((_arr(F.grid_sample(fastnn.tensor(x), fastnn.tensor(grid),
                                         padding_mode=padding_mode)) * weight).sum())
    np.testing.assert_allclose(_arr(xt.grad), numeric_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_arr(gt.grad), numeric_grad(loss, grid),
                               rtol=1e-5, atol=1e-7)


def test_grid_sample_identity_and_errors():
    x = fastnn.randn(2, 3, 5, 6)
    eye = fastnn.tensor(np.tile(np.array([[1.0, 0, 0], [0, 1, 0]], np.float32), (2, 1, 1)))
    for ac in (False, True):
        y = F.grid_sample(x, F.affine_grid(eye, (2, 3, 5, 6), align_corners=ac),
                          align_corners=ac)
        np.testing.assert_allclose(_arr(y), _arr(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.grid_sample(x, fastnn.zeros(2, 3, 3, 2), mode="bicubic")
    with pytest.raises(ValueError, match="grid"):
        F.grid_sample(x, fastnn.zeros(1, 3, 3, 2))
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(fastnn.zeros(2, 3, 3), (2, 3, 4, 4))


# ======================================================= EmbeddingBag, LRN, adaptive max pooling
BAG_IDX = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0])
BAG_OFFSETS = np.array([0, 4, 4, 7])                 # the second bag is empty


@needs_torch
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(mode):
    tm, fm = torch.nn.EmbeddingBag(10, 4, mode=mode), nn.EmbeddingBag(10, 4, mode=mode)
    _load_torch_weights(tm, fm, np.float64)
    for lib_args in [lambda L: (L.tensor(BAG_IDX), L.tensor(BAG_OFFSETS)),
                     lambda L: (L.tensor(BAG_IDX.reshape(2, 5)),)]:
        tm.weight.grad = fm.weight.grad = None
        _compare_module(tm, fm, [], np.float64,
                        call=lambda m, L=None: m(*lib_args(torch if m is tm else fastnn)))
    tm, fm = torch.nn.EmbeddingBag(10, 4, mode="sum", padding_idx=4), \
        nn.EmbeddingBag(10, 4, mode="sum", padding_idx=4)
    _load_torch_weights(tm, fm, np.float64)
    _compare_module(tm, fm, [_rnd(10, seed=1)], np.float64,
                    call=lambda m, w: m((torch if m is tm else fastnn).tensor(BAG_IDX),
                                        (torch if m is tm else fastnn).tensor(BAG_OFFSETS),
                                        per_sample_weights=w))


@needs_torch
def test_local_response_norm_adaptive_max_pool_softmax2d_dropout1d_match_torch():
    for args in [(5, 1e-2, 0.75, 2.0), (4,)]:
        _compare_module(torch.nn.LocalResponseNorm(*args), nn.LocalResponseNorm(*args),
                        [_rnd(2, 7, 5, 6)], np.float32)
    _compare_module(torch.nn.AdaptiveMaxPool2d((3, 4)), nn.AdaptiveMaxPool2d((3, 4)),
                    [_rnd(2, 3, 5, 7)], np.float64)
    _compare_module(torch.nn.AdaptiveMaxPool1d(4), nn.AdaptiveMaxPool1d(4), [_rnd(2, 3, 9)],
                    np.float64)
    _compare_module(torch.nn.Softmax2d(), nn.Softmax2d(), [_rnd(2, 3, 4, 5)], np.float32)
    tm, fm = torch.nn.Dropout1d(0.5).eval(), nn.Dropout1d(0.5).eval()
    _compare_module(tm, fm, [_rnd(2, 3, 5)], np.float32)


def test_embedding_bag_and_dropout1d_behaviour_and_errors():
    m = nn.EmbeddingBag(10, 3, mode="sum")
    assert list(m.state_dict()) == ["weight"]
    out = m(fastnn.tensor(BAG_IDX), fastnn.tensor(BAG_OFFSETS))
    w = _arr(m.weight)
    np.testing.assert_allclose(_arr(out)[0], w[[1, 2, 4, 5]].sum(0), rtol=1e-6)
    np.testing.assert_array_equal(_arr(out)[1], 0)                  # the empty bag
    with pytest.raises(ValueError, match="offsets"):
        m(fastnn.tensor(BAG_IDX))
    with pytest.raises(IndexError, match="out of range"):
        m(fastnn.tensor(np.array([[1, 10]])))
    with pytest.raises(NotImplementedError, match="per_sample_weights"):
        nn.EmbeddingBag(10, 3)(fastnn.tensor(BAG_IDX), fastnn.tensor(BAG_OFFSETS),
                               per_sample_weights=fastnn.ones(10))
    fastnn.manual_seed(0)
    y = _arr(nn.Dropout1d(0.5)(fastnn.ones(4, 8, 5)))
    per_channel = y.reshape(32, 5)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert all(len(set(row)) == 1 for row in per_channel)           # whole channels dropped


def test_init_orthogonal_eye_dirac():
    w = fastnn.empty(6, 4)
    nn.init.orthogonal_(w, gain=2.0)
    np.testing.assert_allclose(_arr(w).T @ _arr(w), 4 * np.eye(4), atol=1e-5)
    w = nn.init.orthogonal_(fastnn.empty(3, 2, 4))                 # rows < cols: rows orthonormal
    flat = _arr(w).reshape(3, 8)
    np.testing.assert_allclose(flat @ flat.T, np.eye(3), atol=1e-5)
    lstm = nn.LSTM(3, 4)
    nn.init.orthogonal_(lstm.weight_hh_l0)                          # what RNN programs do
    np.testing.assert_allclose(_arr(lstm.weight_hh_l0).T @ _arr(lstm.weight_hh_l0), np.eye(4),
                               atol=1e-5)
    np.testing.assert_array_equal(_arr(nn.init.eye_(fastnn.empty(2, 3))), np.eye(2, 3))
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    x = fastnn.randn(1, 3, 5, 5)
    np.testing.assert_allclose(_arr(conv(x)), _arr(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="2 or more"):
        nn.init.orthogonal_(fastnn.empty(3))


@needs_torch
def test_unfold_fold_bilinear_match_torch():
    geometry = dict(dilation=(1, 2), padding=1, stride=(2, 1))
    _compare_module(torch.nn.Unfold((2, 3), **geometry), nn.Unfold((2, 3), **geometry),
                    [_rnd(2, 3, 7, 6)], np.float32)
    _compare_module(torch.nn.Fold((7, 6), (2, 3), **geometry), nn.Fold((7, 6), (2, 3), **geometry),
                    [_rnd(2, 18, 16)], np.float32)
    _compare_module(torch.nn.Fold((8, 7), 3, stride=2), nn.Fold((8, 7), 3, stride=2),
                    [_rnd(18, 9)], np.float64)                    # unbatched
    tm, fm = torch.nn.Bilinear(3, 4, 5), nn.Bilinear(3, 4, 5)
    _load_torch_weights(tm, fm, np.float32)
    _compare_module(tm, fm, [_rnd(2, 6, 3), _rnd(2, 6, 4, seed=1)], np.float32)


def test_fold_of_unfold_counts_overlaps_and_errors():
    x = fastnn.ones(1, 2, 4, 4)
    counts = _arr(F.fold(F.unfold(x, 3, padding=1), (4, 4), 3, padding=1))
    assert counts[0, 0, 0, 0] == 4 and counts[0, 1, 1, 1] == 9     # blocks covering each pixel
    with pytest.raises(RuntimeError, match="sliding blocks"):
        F.fold(fastnn.randn(1, 18, 5), (4, 4), 3)


# ================================================================ more losses
_Y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
LOSSES = {
    "MarginRankingLoss": (dict(margin=0.3), lambda L: [_rnd(6), _rnd(6, seed=1)],
                          lambda L: [L.tensor(_Y)]),
    "HingeEmbeddingLoss": (dict(margin=0.8), lambda L: [_rnd(6)], lambda L: [L.tensor(_Y)]),
    "SoftMarginLoss": (dict(), lambda L: [_rnd(6)], lambda L: [L.tensor(_Y)]),
    "MultiLabelSoftMarginLoss": (dict(), lambda L: [_rnd(4, 3)],
                                 lambda L: [L.tensor((_rnd(4, 3, seed=2) > 0) * 1.0)]),
    "CosineEmbeddingLoss": (dict(margin=0.2), lambda L: [_rnd(6, 4), _rnd(6, 4, seed=1)],
                            lambda L: [L.tensor(_Y)]),
    "TripletMarginLoss": (dict(margin=0.5, swap=True),
                          lambda L: [_rnd(5, 4), _rnd(5, 4, seed=1), _rnd(5, 4, seed=2)],
                          lambda L: []),
    "MultiMarginLoss": (dict(p=2, margin=0.7), lambda L: [_rnd(5, 4)],
                        lambda L: [L.tensor(np.array([0, 3, 1, 1, 2]))]),
    "PoissonNLLLoss": (dict(full=True), lambda L: [_rnd(6)],
                       lambda L: [L.tensor(np.array([0.0, 1, 2, 5, 3, 0]))]),
    "GaussianNLLLoss": (dict(full=True), lambda L: [_rnd(5, 3), _rnd(5, 3, seed=1)],
                        lambda L: [L.tensor(np.abs(_rnd(5, seed=2)) + 1e-7)]),
}


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_more_losses_match_torch(name, reduction):
    kw, inputs, extra = LOSSES[name]
    tm = getattr(torch.nn, name)(reduction=reduction, **kw)
    fm = getattr(nn, name)(reduction=reduction, **kw)
    _compare_module(tm, fm, inputs(None), np.float64,
                    call=lambda m, *a: m(*a, *extra(torch if m is tm else fastnn)))


def test_more_losses_errors():
    with pytest.raises(ValueError, match="not a valid value"):
        nn.SoftMarginLoss(reduction="avg")(fastnn.randn(3), fastnn.ones(3))
    with pytest.raises(ValueError, match="negative"):
        F.gaussian_nll_loss(fastnn.randn(3), fastnn.randn(3), -fastnn.ones(3))
    with pytest.raises(TypeError, match="unexpected"):
        nn.TripletMarginLoss(margins=1.0)


@needs_torch
def test_multi_head_attention_forward_matches_torch():
    """The functional form as CLIP's attention pooling calls it: separate projection weights,
    one concatenated bias, the first position attending over all."""
    e, h = 8, 2

    def call(F, x, wq, wk, wv, b, wo, bo):
        return F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=e, num_heads=h,
            q_proj_weight=wq, k_proj_weight=wk, v_proj_weight=wv, in_proj_weight=None,
            in_proj_bias=b, bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=wo, out_proj_bias=bo, use_separate_proj_weight=True, training=True,
            need_weights=True, average_attn_weights=False)
    Call = _functional_case(call)
    _compare_module(Call(torch.nn.functional), Call(F),
                    [_rnd(5, 2, e)] + [_rnd(e, e, seed=i) for i in (1, 2, 3)] +
                    [_rnd(3 * e, seed=4), _rnd(e, e, seed=5), _rnd(e, seed=6)], np.float64,
                    call=lambda m, *a: m(*a))
    with pytest.raises(NotImplementedError, match="bias_k"):
        F.multi_head_attention_forward(fastnn.randn(3, 1, 4), fastnn.randn(3, 1, 4),
                                       fastnn.randn(3, 1, 4), 4, 2, fastnn.randn(12, 4), None,
                                       fastnn.randn(1, 1, 4), None, False, 0.0,
                                       fastnn.randn(4, 4), None)


@needs_torch
def test_max_unpool_matches_torch():
    x = _rnd(2, 3, 6, 8)
    _, ti = torch.nn.functional.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    pooled = _rnd(*ti.shape, seed=1)
    for size in (None, [7, 9]):
        Call = _functional_case(lambda F, v: F.max_unpool2d(
            v, ti if F is torch.nn.functional else fastnn.tensor(ti.numpy()), 2, 2,
            output_size=size))
        _compare_module(Call(torch.nn.functional), Call(F), [pooled], np.float64,
                        call=lambda m, *a: m(*a))
    _, ti1 = torch.nn.functional.max_pool1d(torch.tensor(x[0]), 3, 2, 1, return_indices=True)
    Call = _functional_case(lambda F, v: F.max_unpool1d(
        v, ti1 if F is torch.nn.functional else fastnn.tensor(ti1.numpy()), 3, 2, 1,
        output_size=[8]))
    _compare_module(Call(torch.nn.functional), Call(F), [_rnd(*ti1.shape, seed=2)], np.float64,
                    call=lambda m, *a: m(*a))


def test_max_pool_then_unpool_restores_the_maxima():
    x = fastnn.randn(1, 2, 4, 4)
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    back = _arr(nn.MaxUnpool2d(2)(y, idx))
    kept = back != 0
    assert kept.sum() == 8
    np.testing.assert_array_equal(back[kept], _arr(x)[kept])
    with pytest.raises(ValueError, match="invalid max index"):
        F.max_unpool2d(y, fastnn.tensor(np.full((1, 2, 2, 2), 99)), 2)
