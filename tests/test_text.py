import numpy as np
import pytest

from fastnn import text


def test_roundtrip_and_ids_are_sorted_positions():
    tok = text.CharTokenizer.from_text("hello, world")
    assert tok.chars == sorted(set("hello, world"))
    ids = tok.encode("world, hello")
    assert ids.dtype == np.int64
    assert [tok.chars[i] for i in ids] == list("world, hello")
    assert tok.decode(ids) == "world, hello"
    assert tok.decode([]) == "" and tok.encode("").shape == (0,)


def test_non_ascii_text():
    s = "¿Dónde está el niño? ñandú 🐍"
    tok = text.CharTokenizer.from_text(s)
    assert tok.decode(tok.encode(s)) == s


def test_unknown_characters_are_listed():
    tok = text.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"2 character\(s\) outside.*'x', 'é'"):
        tok.encode("abxéa")
    assert tok.unknown_chars("abxéa") == ["x", "é"]


def test_replacement_option():
    tok = text.CharTokenizer.from_text("ab ", replacement=" ")
    assert tok.decode(tok.encode("a?b")) == "a b"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        text.CharTokenizer.from_text("ab", replacement="?")


def test_decode_rejects_out_of_range():
    tok = text.CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match="outside"):
        tok.decode([0, 2])


def test_state_dict_roundtrip():
    tok = text.CharTokenizer.from_text("héllo\n")
    tok2 = text.CharTokenizer.from_state_dict(tok.state_dict())
    assert tok2.chars == tok.chars


def test_default_corpus():
    corpus = text.default_corpus()
    assert 400_000 < len(corpus) < 600_000
    tok = text.CharTokenizer.from_text(corpus)
    assert 50 < tok.vocab_size < 200
    assert tok.decode(tok.encode(corpus[:5000])) == corpus[:5000]


def test_load_text(tmp_path):
    p = tmp_path / "es.txt"
    p.write_text("año\n", encoding="utf-8")
    assert text.load_text(p) == "año\n"
    p.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        text.load_text(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        text.load_text(p)


def test_split_and_batches():
    ids = np.arange(100)
    train, val = text.split(ids)
    assert len(train) == 90 and val[0] == 90
    x, y = text.get_batch(train, 8, 5, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 8)
    assert np.all(y == x + 1) and x.max() < 90 and y.max() <= 89
    with pytest.raises(ValueError, match="too few"):
        text.get_batch(np.arange(8), 8, 2, np.random.default_rng(0))
