"""fastnn.nn.utils.rnn: batches of sequences of different lengths, as torch.nn.utils.rnn:
PackedSequence, pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence,
unpad_sequence, unpack_sequence.

A PackedSequence holds the valid steps of a batch, time-major: data (sum of lengths, *) lists
step 0 of every sequence, then step 1 of those at least 2 long, ...; batch_sizes[t] is how many
sequences have a step t. The sequences are ordered by decreasing length (sorted_indices, None
when the caller sorted them, maps back). RNN, LSTM and GRU take one and return one: they run
the padded batch with each sample's length (fastnn.nn.rnn.recurrent_layer's `lengths`).

Packing and unpacking are gathers (Tensor indexing), so gradients flow through both.
"""
from collections import namedtuple

import numpy as np

from ..tensor import Tensor, cat, stack, tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """(data, batch_sizes, sorted_indices, unsorted_indices), as torch's."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _invert(sorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else self._replace(data=data)

    def float(self):
        return self._replace(data=self.data.float())

    def double(self):
        return self._replace(data=self.data.double())

    def cpu(self):
        return self

    @property
    def is_cuda(self):
        return False


def _ints(x):
    return np.asarray(x._data if isinstance(x, Tensor) else x, dtype=np.int64).reshape(-1)


def _invert(perm):
    p = _ints(perm)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size)
    return tensor(inv)


def _layout(batch_sizes):
    """For a packed batch: offsets[t], where step t's rows start in data."""
    bs = _ints(batch_sizes)
    return np.concatenate([[0], np.cumsum(bs)[:-1]]).astype(np.int64), bs


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of the given lengths."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: input must be a Tensor, got "
                        f"{type(input).__name__}")
    lengths = _ints(lengths)
    batch_dim = 0 if batch_first else 1
    if lengths.size != input.shape[batch_dim]:
        raise ValueError(f"Expected `len(lengths)` to be equal to batch_size, but got "
                         f"{lengths.size} (batch_size={input.shape[batch_dim]})")
    if lengths.size and (lengths.min() <= 0):
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if lengths.size and lengths.max() > input.shape[1 - batch_dim]:
        raise RuntimeError(f"a length {lengths.max()} exceeds the padded sequence length "
                           f"{input.shape[1 - batch_dim]}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` "
                               "to pack_padded_sequence and/or pack_sequence to sidestep this "
                               "requirement if you do not need ONNX exportability.")
        sorted_indices = None
        order = np.arange(lengths.size)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = tensor(order)
    x = input.transpose(0, 1) if batch_first else input          # (T, B, *)
    steps, batch = x.shape[0], x.shape[1]
    lens = lengths[order]
    batch_sizes = np.array([(lens > t).sum() for t in range(int(lens.max()))], np.int64)
    # row t * B + b of the (T*B, *) view, for the sorted sample b at step t
    rows = np.concatenate([t * batch + order[:batch_sizes[t]]
                           for t in range(batch_sizes.size)])
    data = x.reshape(steps * batch, *x.shape[2:])[rows]
    return PackedSequence(data, tensor(batch_sizes), sorted_indices, None)


def _padded_sorted(sequence, padding_value=0.0, total_length=None):
    """A PackedSequence as a padded (T, B, *) Tensor in its sorted order, and the lengths."""
    data, batch_sizes = sequence.data, sequence.batch_sizes
    offsets, bs = _layout(batch_sizes)
    steps = bs.size if total_length is None else int(total_length)
    if steps < bs.size:
        raise ValueError(f"Expected total_length to be at least the length of the longest "
                         f"sequence ({bs.size}), but got total_length={total_length}")
    batch = int(bs[0])
    lengths = np.array([(bs > b).sum() for b in range(batch)], np.int64)
    sentinel = data.shape[0]                     # the row of padding appended below
    rows = np.full((steps, batch), sentinel, np.int64)
    for t in range(bs.size):
        rows[t, :bs[t]] = offsets[t] + np.arange(bs[t])
    pad = Tensor(np.full((1,) + tuple(data.shape[1:]), padding_value, data._data.dtype))
    padded = cat([data, pad], 0)[rows.reshape(-1)]
    return padded.reshape(steps, batch, *data.shape[1:]), lengths


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The inverse of pack_padded_sequence: (padded (T, B, *) or (B, T, *), lengths (int64))."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got "
                        f"{type(sequence).__name__}")
    padded, lengths = _padded_sorted(sequence, padding_value, total_length)
    if sequence.unsorted_indices is not None:
        back = _ints(sequence.unsorted_indices)
        padded = padded[:, back]
        lengths = lengths[back]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, tensor(lengths)


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack Tensors (L_i, *) into (max L, B, *) (or (B, max L, *)), padding with
    padding_value on the right (or the left)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    longest = max(s.shape[0] for s in sequences)
    out = []
    for s in sequences:
        short = longest - s.shape[0]
        if short:
            pad = Tensor(np.full((short,) + tuple(s.shape[1:]), padding_value, s._data.dtype))
            s = cat([s, pad] if padding_side == "right" else [pad, s], 0)
        out.append(s)
    return stack(out, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """pad_sequence then pack_padded_sequence."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences of a padded batch, each cut to its length."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [x[b, :int(n)] for b, n in enumerate(_ints(lengths))]


def unpack_sequence(packed_sequences):
    """The list of sequences in a PackedSequence, in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
