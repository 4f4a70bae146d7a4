"""A sequence-to-sequence model in the style of PyTorch's "NLP from scratch: translation with a
sequence to sequence network and attention" tutorial, written out here: an EncoderRNN (Embedding,
batch_first GRU), an AttnDecoderRNN with Bahdanau (additive) attention (torch.bmm over the
encoder outputs, F.softmax, the GRU fed [embedded; context], teacher forcing, topk for greedy
decoding), NLLLoss on log_softmax, Adam, and greedy evaluation under no_grad.

Also the "Sequence models" idioms around packed batches: pad_sequence, pack_padded_sequence with
enforce_sorted=False, an LSTM over the packed batch, pad_packed_sequence.

The task: reverse a short digit sequence. Dropout is 0 (the libraries' random streams differ)
and the weights come from a numpy-drawn state dict. The last stdout line is the results as JSON.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

SOS_token, EOS_token = 0, 1
MAX_LENGTH = 6
VOCAB = 12                      # SOS, EOS and the digits 0-9 as tokens 2..11


def numpy_state(model, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    return {k: torch.tensor((rng.standard_normal(tuple(v.shape)) * scale).astype(np.float32))
            for k, v in model.state_dict().items()}


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.0):
        super(EncoderRNN, self).__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super(BahdanauAttention, self).__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, dropout_p=0.0):
        super(AttnDecoderRNN, self).__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        attentions = []
        for i in range(MAX_LENGTH):
            decoder_output, decoder_hidden, attn_weights = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs)
            decoder_outputs.append(decoder_output)
            attentions.append(attn_weights)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)     # teacher forcing
            else:
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()
        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
        attentions = torch.cat(attentions, dim=1)
        return decoder_outputs, decoder_hidden, attentions

    def forward_step(self, input, hidden, encoder_outputs):
        embedded = self.dropout(self.embedding(input))
        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs)
        input_gru = torch.cat((embedded, context), dim=2)
        output, hidden = self.gru(input_gru, hidden)
        output = self.out(output)
        return output, hidden, attn_weights


def make_pairs(n, rng):
    pairs = []
    for _ in range(n):
        length = int(rng.integers(2, MAX_LENGTH))
        digits = rng.integers(0, 10, length)
        src = [d + 2 for d in digits] + [EOS_token]
        tgt = [d + 2 for d in digits[::-1]] + [EOS_token]
        pad = [EOS_token] * (MAX_LENGTH - len(src))
        pairs.append((src + pad, tgt + pad))
    return pairs


def train_seq2seq():
    rng = np.random.default_rng(0)
    pairs = make_pairs(48, rng)
    inputs = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    targets = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    hidden_size = 24
    encoder = EncoderRNN(VOCAB, hidden_size)
    decoder = AttnDecoderRNN(hidden_size, VOCAB)
    encoder.load_state_dict(numpy_state(encoder, 1))
    decoder.load_state_dict(numpy_state(decoder, 2))
    encoder_optimizer = optim.Adam(encoder.parameters(), lr=0.01)
    decoder_optimizer = optim.Adam(decoder.parameters(), lr=0.01)
    criterion = nn.NLLLoss()
    losses = []
    for epoch in range(12):
        total = 0.0
        for start in range(0, len(pairs), 16):
            input_tensor = inputs[start:start + 16]
            target_tensor = targets[start:start + 16]
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)),
                             target_tensor.view(-1))
            loss.backward()
            encoder_optimizer.step()
            decoder_optimizer.step()
            total += loss.item()
        losses.append(total / 3)
    with torch.no_grad():
        encoder_outputs, encoder_hidden = encoder(inputs[:4])
        decoder_outputs, _, attentions = decoder(encoder_outputs, encoder_hidden)
        _, topi = decoder_outputs.topk(1)
        decoded = topi.squeeze(-1).tolist()
    return {"losses": losses[::3] + [losses[-1]], "decoded": decoded,
            "attention_row": [round(v, 5) for v in attentions[0, 0].tolist()]}


def packed_lstm():
    rng = np.random.default_rng(5)
    seqs = [torch.tensor(rng.standard_normal((n, 3)).astype(np.float32)) for n in (4, 6, 2, 5)]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = pad_sequence(seqs, batch_first=True)
    lstm = nn.LSTM(3, 5, batch_first=True, bidirectional=True)
    lstm.load_state_dict(numpy_state(lstm, 3))
    head = nn.Linear(10, 1)
    head.load_state_dict(numpy_state(head, 4))
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed)
    unpacked, out_lengths = pad_packed_sequence(out, batch_first=True)
    score = head(torch.cat([h_n[0], h_n[1]], dim=1)).sum()
    score.backward()
    return {"batch_sizes": packed.batch_sizes.tolist(), "lengths": out_lengths.tolist(),
            "unpacked_shape": list(unpacked.shape),
            "padding_is_zero": bool((unpacked[2, 2:] == 0).all()),
            "score": score.item(), "grad_sum": lstm.weight_ih_l0_reverse.grad.sum().item()}


def main():
    torch.manual_seed(0)
    print(json.dumps({"seq2seq": train_seq2seq(), "packed": packed_lstm()}))


if __name__ == "__main__":
    main()
