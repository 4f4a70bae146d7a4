"""Text for character-level language models: a character tokenizer, the default corpus, batches.

    from fastnn import text
    corpus = text.default_corpus()                 # CPython's own documentation, no download
    tok = text.CharTokenizer.from_text(corpus)
    ids = tok.encode("def f(x):")                  # int64 array
    tok.decode(ids)                                # 'def f(x):'
    train, val = text.split(tok.encode(corpus))    # first 90% / last 10%, as nanoGPT
    x, y = text.get_batch(train, block_size=64, batch_size=12, rng=np.random.default_rng(0))

A character outside the vocabulary is an error that lists the characters, unless the tokenizer
has a `replacement` character (which must itself be in the vocabulary): then each unknown
character is encoded as that one.
"""
import numpy as np

from .errors import MissingDependencyError


def default_corpus():
    """The English documentation text shipped inside CPython: the values of
    `pydoc_data.topics.topics` (help() topics, ~465k characters), joined by newlines."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some distributions strip pydoc_data
        raise MissingDependencyError("the default corpus needs CPython's pydoc_data module, "
                                     "which this Python lacks; pass a UTF-8 text file with "
                                     "--text FILE") from e
    return "\n".join(topics.values())


def load_text(path):
    """Read a UTF-8 text file; a clear error if it is not UTF-8 or has no text."""
    try:
        with open(path, encoding="utf-8") as f:
            data = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None
    if not data:
        raise ValueError(f"{path}: the file is empty")
    return data


def _describe(chars):
    return ", ".join(repr(c) for c in chars)


class CharTokenizer:
    """One token per character. Token ids are the positions in `chars` (sorted code points).

    replacement: None (unknown characters raise ValueError) or a character in the vocabulary
    that stands in for every unknown character when encoding.
    """

    def __init__(self, chars, replacement=None):
        chars = sorted(set(chars))
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        if replacement is not None and replacement not in self.stoi:
            raise ValueError(f"CharTokenizer: replacement {replacement!r} is not in the vocabulary")
        self.replacement = replacement
        # code point -> id lookup for fast encoding of long texts; -1 marks unknown
        self._table = np.full(max(map(ord, chars)) + 1, -1, np.int64)
        self._table[[ord(c) for c in chars]] = np.arange(len(chars))

    @classmethod
    def from_text(cls, text, replacement=None):
        return cls(set(text), replacement=replacement)

    @property
    def vocab_size(self):
        return len(self.chars)

    def unknown_chars(self, text):
        """The characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - self.stoi.keys())

    def encode(self, text):
        """str -> int64 array of token ids."""
        if not text:
            return np.zeros(0, np.int64)
        try:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        except UnicodeEncodeError:  # lone surrogates: slower, but every str has code points
            codes = np.fromiter(map(ord, text), np.int64, len(text))
        inside = codes < len(self._table)
        ids = np.full(codes.shape, -1, np.int64)
        ids[inside] = self._table[codes[inside]]
        unknown = ids < 0
        if unknown.any():
            if self.replacement is None:
                bad = self.unknown_chars(text)
                shown = _describe(bad[:20]) + (f" and {len(bad) - 20} more" if len(bad) > 20
                                               else "")
                raise ValueError(f"the text has {len(bad)} character(s) outside the "
                                 f"{self.vocab_size}-character vocabulary: {shown}")
            ids[unknown] = self.stoi[self.replacement]
        return ids

    def decode(self, ids):
        """Token ids (any iterable of ints) -> str."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise ValueError(f"decode: token id {bad} is outside [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids.tolist())

    # The vocabulary travels inside checkpoints as an int32 array of code points.
    def state_dict(self):
        return {"chars": np.array([ord(c) for c in self.chars], np.int32)}

    @classmethod
    def from_state_dict(cls, state, replacement=None):
        return cls([chr(int(c)) for c in np.asarray(state["chars"])], replacement=replacement)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def split(ids, val_fraction=0.1):
    """(train, val): the first 1 - val_fraction of the token ids and the rest, as nanoGPT."""
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def get_batch(data, block_size, batch_size, rng):
    """Random windows: x (batch, block) int64 and y = x shifted by one position."""
    if len(data) <= block_size:
        raise ValueError(f"get_batch: {len(data)} tokens are too few for block_size {block_size} "
                         f"(need at least {block_size + 1})")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    offsets = starts[:, None] + np.arange(block_size)
    return data[offsets], data[offsets + 1]
