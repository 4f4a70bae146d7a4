"""Generation on 'cuda' (Numba's CUDA simulator counted as a device): sample_next runs on the
device (temperature, top-k, top-p, the draw from the device's Philox stream), GPT.generate grows
the sequence there with no copy per token, and generate_stream copies one thing per token: the
token ids, for the caller to print.
"""
import numpy as np
import pytest

import fastnn
import fastnn.cuda
from fastnn.backends.cuda import array as ca
from fastnn.models import GPT, GPTConfig
from fastnn.models.gpt import entropy, sample_next

pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")


@pytest.fixture(autouse=True)
def gpu(monkeypatch):
    monkeypatch.setenv(fastnn.cuda.SIMULATOR_AS_DEVICE, "1")
    if not fastnn.cuda.is_available():
        pytest.skip(f"no simulated GPU here: {fastnn.cuda.unavailable_reason()}")


LOGITS = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]], np.float32))


@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=1.0),
                                dict(temperature=0.7, top_k=2), dict(temperature=1.0, top_p=0.75),
                                dict(temperature=1.3, top_k=3, top_p=0.6)])
def test_sample_next_on_the_device_gives_the_cpus_distribution_without_copies(kw):
    d = ca.from_host(LOGITS)
    ca.reset_transfers()
    ids, probs = sample_next(d, rng=np.random.default_rng(0), **kw)
    assert dict(ca.transfer_log()) == {}
    assert ca.is_device_array(ids) and ca.is_device_array(probs)
    cpu_ids, cpu_probs = sample_next(LOGITS, rng=np.random.default_rng(0), **kw)
    probs, ids = ca.to_host(probs), ca.to_host(ids)
    np.testing.assert_allclose(probs, cpu_probs, rtol=1e-6, atol=1e-12)
    assert ids.dtype == np.int64 and ids.shape == (2,)
    assert (probs[np.arange(2), ids] > 0).all()          # never a token outside the support
    if kw["temperature"] == 0:
        np.testing.assert_array_equal(ids, cpu_ids)
    np.testing.assert_allclose(ca.to_host(entropy(ca.from_host(probs))), entropy(cpu_probs),
                               rtol=1e-10)


def test_device_draws_follow_the_distribution_and_repeat_with_the_seed():
    rows = ca.from_host(np.repeat(LOGITS[:1], 400, axis=0))
    draws = ca.to_host(sample_next(rows, 1.0, top_k=3, rng=np.random.default_rng(5))[0])
    again = ca.to_host(sample_next(rows, 1.0, top_k=3, rng=np.random.default_rng(5))[0])
    np.testing.assert_array_equal(draws, again)
    freq = np.bincount(draws, minlength=4) / len(draws)
    want = np.array([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert freq[3] == 0
    np.testing.assert_allclose(freq, want, atol=0.08)   # 400 draws: a few standard errors


def _model(device):
    fastnn.manual_seed(0)
    m = GPT(GPTConfig(block_size=3, vocab_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0))
    return m.to(device)


def test_generate_on_the_device_copies_nothing_per_token():
    idx = fastnn.tensor(np.array([[1, 2], [3, 4]]))
    cpu = _model("cpu").generate(idx, 3, temperature=0)
    model = _model("cuda")
    idx = idx.to("cuda")
    ca.reset_transfers()
    greedy = model.generate(idx, 3, temperature=0)      # past block_size: the cropped window
    sampled = model.generate(idx, 2, temperature=0.9, top_k=4, top_p=0.9,
                             generator=np.random.default_rng(1))
    assert dict(ca.transfer_log()) == {}
    assert greedy.device.type == "cuda" and sampled.shape == (2, 4)
    np.testing.assert_array_equal(greedy.cpu().numpy(), cpu.numpy())
    again = model.generate(idx, 2, temperature=0.9, top_k=4, top_p=0.9,
                           generator=np.random.default_rng(1))
    np.testing.assert_array_equal(again.cpu().numpy(), sampled.cpu().numpy())
    assert ((sampled.cpu().numpy() >= 0) & (sampled.cpu().numpy() < 8)).all()


def test_generate_stream_copies_one_token_id_per_step():
    model = _model("cuda")
    prompt = np.array([[1, 2]])                    # a host prompt: one upload
    ca.reset_transfers()
    steps = list(model.generate_stream(prompt, 2, 1.0, 3, None, np.random.default_rng(2)))
    assert dict(ca.transfer_log()) == {("h2d", "from_host"): 1, ("d2h", "to_host"): 2}
    for nxt, probs in steps:
        assert isinstance(nxt, np.ndarray) and nxt.shape == (1,) and nxt.dtype == np.int64
        assert ca.is_device_array(probs) and probs.shape == (1, 8)
    # the CLI's per-token entropy stays on the device too
    ca.reset_transfers()
    e = entropy(steps[0][1])
    assert dict(ca.transfer_log()) == {} and ca.is_device_array(e)


def test_evenly_spaced_host_indices_are_made_on_the_device():
    d = ca.from_host(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    h = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ca.reset_transfers()
    last = d[:, [-1], :]
    rows = d[np.arange(2), [2, 0]]
    assert dict(ca.transfer_log()) == {}
    np.testing.assert_array_equal(ca.to_host(last), h[:, [-1], :])
    np.testing.assert_array_equal(ca.to_host(rows), h[np.arange(2), [2, 0]])
    ca.reset_transfers()
    uneven = d[:, [0, 2, 1], 1]                       # not a progression: uploaded, counted
    assert dict(ca.transfer_log()) == {("h2d", "__getitem__"): 1}
    np.testing.assert_array_equal(ca.to_host(uneven), h[:, [0, 2, 1], 1])
    with pytest.raises(IndexError):
        d[:, [3]]
