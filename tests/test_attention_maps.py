"""attention_weights replays a GPT's attention exactly, and `fastnn generate --show-attention`
draws it."""
import numpy as np
import pytest

from fastnn import text as textlib
from fastnn.models import GPT, GPTConfig, save_checkpoint
from fastnn.models.attention_maps import attention_weights
from fastnn.tensor import Tensor, manual_seed, no_grad


def _model(n_layer=2, n_head=2, n_embd=16, block_size=12, vocab=7):
    manual_seed(0)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab, n_layer=n_layer,
                         n_head=n_head, n_embd=n_embd, dropout=0.0, bias=True))


def test_weights_reproduce_the_attention_output():
    model = _model()
    ids = np.array([1, 4, 2, 6, 0, 3, 5, 2], np.int64)
    w = attention_weights(model, ids)
    assert w.shape == (2, 2, 8, 8)
    assert np.allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w, k=1) == 0)                        # causal
    # the weights times the values, through c_proj, are what the first block's attention adds
    blk = model.transformer.h[0]
    with no_grad():
        x = model.transformer.wte(ids[None]) + model.transformer.wpe(np.arange(8))
        h = blk.ln_1(x)
        v = blk.attn.c_attn(h)._data[0, :, 32:].reshape(8, 2, 8).transpose(1, 0, 2)
        y = (w[0] @ v).transpose(1, 0, 2).reshape(8, 16)
        expected = blk.attn(h)._data[0]
        got = blk.attn.c_proj(Tensor(y.astype(np.float32)))._data
    assert np.allclose(got, expected, atol=1e-5)


def test_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="context"):
        attention_weights(model, np.zeros(13, np.int64))
    with pytest.raises(TypeError, match="integers"):
        attention_weights(model, np.zeros(3))
    with pytest.raises(ValueError, match="one sequence"):
        attention_weights(model, np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="GPT"):
        attention_weights(object(), np.zeros(3, np.int64))


def test_generate_show_attention(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from fastnn.models.gpt_cli import generate_main
    import matplotlib.image as mpimg
    tok = textlib.CharTokenizer.from_text("abc de\n")
    model = _model(vocab=tok.vocab_size)
    ckpt = tmp_path / "g.npz"
    save_checkpoint(model, ckpt, tokenizer=tok)
    out = tmp_path / "att" / "a.png"
    assert generate_main(["--checkpoint", str(ckpt), "--prompt", "ab", "--max-new-tokens", "5",
                          "--seed", "0", "--show-attention", str(out)]) == 0
    img = mpimg.imread(str(out))
    assert img.shape[0] > 100 and img[..., :3].std() > 0.01
    assert "attention maps written" in capsys.readouterr().err
