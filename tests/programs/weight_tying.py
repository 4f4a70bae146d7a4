"""Sharing and copying weights the ways language-model code does: the word_language_model
example's tied encoder/decoder (`self.decoder.weight = self.encoder.weight`) with its
`init_weights` through `.data` (`uniform_`, `zero_`), pretrained vectors copied in with
`.data.copy_`, a vocabulary grown by assigning a bigger tensor to `.data`, and an exponential
moving average of the weights kept through `.data` (`ema.data.mul_(d).add_(p.data, ...)`).
"""
import copy
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TiedLM(nn.Module):
    def __init__(self, ntoken, ninp):
        super(TiedLM, self).__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.hidden = nn.Linear(2 * ninp, ninp)
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight
        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        self.encoder.weight.data.uniform_(-initrange, initrange)
        self.decoder.bias.data.zero_()

    def forward(self, context):
        emb = self.encoder(context)                 # (batch, 2, ninp)
        h = torch.tanh(self.hidden(emb.view(emb.size(0), -1)))
        return self.decoder(h)


def corpus(rng, ntoken, n):
    """Token triples where the third follows from the first two (a learnable rule)."""
    a = rng.integers(0, ntoken, n)
    b = rng.integers(0, ntoken, n)
    c = (a + 2 * b) % ntoken
    return torch.from_numpy(np.stack([a, b], 1)), torch.from_numpy(c)


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ntoken, ninp = 12, 16
    model = TiedLM(ntoken, ninp)
    out = {"tied": model.decoder.weight is model.encoder.weight,
           "n_params": sum(p.numel() for p in model.parameters()),
           "init_in_range": bool(model.encoder.weight.data.abs().max() <= 0.1),
           "bias_zero": bool((model.decoder.bias.data == 0).all())}

    # "pretrained" vectors and weights, copied in through .data
    pretrained = rng.normal(0, 0.3, (ntoken, ninp)).astype(np.float32)
    model.encoder.weight.data.copy_(torch.from_numpy(pretrained))
    model.hidden.weight.data.copy_(torch.from_numpy(
        rng.normal(0, 0.25, (ninp, 2 * ninp)).astype(np.float32)))
    model.hidden.bias.data.fill_(0.01)
    out["decoder_sees_copy"] = bool(torch.equal(model.decoder.weight.data,
                                                torch.from_numpy(pretrained)))

    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    x, y = corpus(rng, ntoken, 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for step in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.data.mul_(0.8).add_(p.data, alpha=0.2)
        losses.append(loss.item())
    out["losses"] = losses[::5]
    out["still_tied"] = model.decoder.weight.data_ptr() == model.encoder.weight.data_ptr()
    out["ema_loss"] = F.cross_entropy(ema(x), y).item()

    # grow the vocabulary by two tokens: a bigger tensor assigned to .data keeps the old rows
    # (on a fresh copy: PyTorch's autograd remembers the shape of a parameter it has seen)
    big = TiedLM(ntoken, ninp)
    big.load_state_dict(model.state_dict())
    grown = torch.zeros(ntoken + 2, ninp)
    grown[:ntoken] = big.encoder.weight.data
    grown[ntoken:] = torch.from_numpy(rng.normal(0, 0.1, (2, ninp)).astype(np.float32))
    big.encoder.weight.data = grown
    big.encoder.num_embeddings = ntoken + 2
    new_bias = torch.zeros(ntoken + 2)
    new_bias[:ntoken] = big.decoder.bias.data
    big.decoder.bias.data = new_bias
    big.decoder.out_features = ntoken + 2
    logits = big(torch.tensor([[ntoken, ntoken + 1], [0, 1]]))
    out["grown_shape"] = list(logits.shape)
    out["grown_logits"] = logits[1, :4].tolist()
    loss = F.cross_entropy(logits, torch.tensor([ntoken + 1, 3]))
    loss.backward()
    out["grown_grad_shape"] = list(big.encoder.weight.grad.shape)
    out["grown_grad_rows"] = big.encoder.weight.grad.abs().sum(1).gt(0).sum().item()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
