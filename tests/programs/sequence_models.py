"""Two sequence models in the style of PyTorch's tutorials, written out here:

1. "Sequence models and LSTM networks": an LSTM part-of-speech tagger (nn.Embedding, nn.LSTM
   fed a (seq, 1, dim) view, nn.Linear, F.log_softmax, nn.NLLLoss, SGD), then a two-layer
   bidirectional batch_first LSTM with an explicit (h0, c0), read through h_n.
2. "Language modeling with nn.Transformer": a word-level model with a sin/cos PositionalEncoding
   buffer, nn.TransformerEncoderLayer / nn.TransformerEncoder, the square subsequent mask from
   nn.Transformer.generate_square_subsequent_mask, batchify / get_batch, CrossEntropyLoss,
   clip_grad_norm_, SGD with StepLR, an evaluate() under no_grad; and an nn.MultiheadAttention
   call that returns its averaged attention weights.

Dropout is 0 (the two libraries' random streams differ) and every weight comes from a
numpy-drawn state dict loaded with load_state_dict. The last stdout line is the results as JSON.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(1)


def numpy_state(model, seed, scale=0.3):
    """A state dict drawn with numpy: normal * scale, LayerNorm weights around 1."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, t in model.state_dict().items():
        a = rng.standard_normal(tuple(t.shape)) * scale
        if "norm" in name and name.endswith("weight"):
            a = 1 + a
        state[name] = torch.tensor(a.astype(np.float32))
    return state


# ---------------------------------------------------------------- 1. the LSTM tagger
TRAINING_DATA = [
    ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody read that book".split(), ["NN", "V", "DET", "NN"]),
    ("The cat read the book".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody ate that apple".split(), ["NN", "V", "DET", "NN"]),
]
TAG_TO_IX = {"DET": 0, "NN": 1, "V": 2}


def prepare_sequence(seq, to_ix):
    idxs = [to_ix[w] for w in seq]
    return torch.tensor(idxs, dtype=torch.long)


class LSTMTagger(nn.Module):
    def __init__(self, embedding_dim, hidden_dim, vocab_size, tagset_size):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
        tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
        tag_scores = F.log_softmax(tag_space, dim=1)
        return tag_scores


def run_tagger():
    word_to_ix = {}
    for sent, tags in TRAINING_DATA:
        for word in sent:
            if word not in word_to_ix:
                word_to_ix[word] = len(word_to_ix)
    model = LSTMTagger(6, 6, len(word_to_ix), len(TAG_TO_IX))
    model.load_state_dict(numpy_state(model, 0))
    loss_function = nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    losses = []
    for epoch in range(30):
        total = 0.0
        for sentence, tags in TRAINING_DATA:
            model.zero_grad()
            sentence_in = prepare_sequence(sentence, word_to_ix)
            targets = prepare_sequence(tags, TAG_TO_IX)
            tag_scores = model(sentence_in)
            loss = loss_function(tag_scores, targets)
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(TRAINING_DATA))
    with torch.no_grad():
        inputs = prepare_sequence(TRAINING_DATA[2][0], word_to_ix)
        tag_scores = model(inputs)
    return {"losses": losses[::5] + [losses[-1]],
            "predicted": tag_scores.argmax(dim=1).tolist(),
            "scores": [round(v, 6) for v in tag_scores[0].tolist()]}


class BiLSTMClassifier(nn.Module):
    """Two layers, both directions, batch_first; the class from the last layer's final states."""

    def __init__(self, input_size, hidden_size, n_classes):
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers=2, batch_first=True,
                           bidirectional=True)
        self.fc = nn.Linear(2 * hidden_size, n_classes)

    def forward(self, x):
        h0 = torch.zeros(4, x.size(0), self.hidden_size)
        c0 = torch.zeros(4, x.size(0), self.hidden_size)
        out, (h_n, c_n) = self.rnn(x, (h0, c0))
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)
        return self.fc(last), out


def run_bilstm():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((16, 7, 2)).astype(np.float32))
    y = torch.tensor((rng.standard_normal(16) > 0).astype(np.int64))
    model = BiLSTMClassifier(2, 5, 2)
    model.load_state_dict(numpy_state(model, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for step in range(15):
        logits, out = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {"losses": losses[::3] + [losses[-1]], "out_shape": list(out.shape),
            "grad_norm_w_hh_l1_reverse": model.rnn.weight_hh_l1_reverse.grad.norm().item()}


# ---------------------------------------------------------------- 2. the transformer LM
TEXT = """the quick brown fox jumps over the lazy dog . the dog sleeps in the sun . a fox runs
through the field and the dog watches the fox . the sun sets over the field and the fox sleeps .
a quick dog jumps over a lazy fox . the field is quiet in the sun ."""


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.0, max_len=500):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[:x.size(0)]
        return self.dropout(x)


class TransformerModel(nn.Module):
    def __init__(self, ntoken, d_model, nhead, d_hid, nlayers, dropout=0.0):
        super().__init__()
        self.model_type = "Transformer"
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        encoder_layers = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layers, nlayers,
                                                         enable_nested_tensor=False)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)

    def forward(self, src, src_mask=None):
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        if src_mask is None:
            src_mask = nn.Transformer.generate_square_subsequent_mask(len(src))
        output = self.transformer_encoder(src, src_mask)
        output = self.linear(output)
        return output


def batchify(data, bsz):
    seq_len = data.size(0) // bsz
    data = data[:seq_len * bsz]
    data = data.view(bsz, seq_len).t().contiguous()
    return data


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].reshape(-1)
    return data, target


def run_transformer():
    words = TEXT.split()
    vocab = {w: i for i, w in enumerate(sorted(set(words)))}
    data = torch.tensor([vocab[w] for w in words], dtype=torch.long)
    train_data = batchify(data[:44], 4)
    val_data = batchify(data[44:], 2)
    bptt = 6
    ntokens = len(vocab)
    model = TransformerModel(ntokens, 16, 2, 32, 2)
    model.load_state_dict(numpy_state(model, 2, scale=0.2))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.95)

    def evaluate(eval_data):
        model.eval()
        total_loss = 0.0
        with torch.no_grad():
            for i in range(0, eval_data.size(0) - 1, bptt):
                data, targets = get_batch(eval_data, i, bptt)
                seq_len = data.size(0)
                output = model(data)
                output_flat = output.view(-1, ntokens)
                total_loss += seq_len * criterion(output_flat, targets).item()
        return total_loss / (len(eval_data) - 1)

    history = []
    for epoch in range(1, 4):
        model.train()
        total = 0.0
        batches = 0
        for i in range(0, train_data.size(0) - 1, bptt):
            data, targets = get_batch(train_data, i, bptt)
            output = model(data)
            output_flat = output.view(-1, ntokens)
            loss = criterion(output_flat, targets)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            total += loss.item()
            batches += 1
        val_loss = evaluate(val_data)
        history.append({"train_loss": total / batches, "val_loss": val_loss,
                        "lr": scheduler.get_last_lr()[0]})
        scheduler.step()

    # attention weights of a standalone MultiheadAttention over the trained embeddings
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    mha.load_state_dict(numpy_state(mha, 4))
    with torch.no_grad():
        emb = model.embedding(train_data[:5].t())
        pad = torch.zeros(emb.size(0), 5, dtype=torch.bool)
        pad[0, 3:] = True
        attn_out, attn_weights = mha(emb, emb, emb, key_padding_mask=pad)
    return {"history": history, "n_params": sum(p.numel() for p in model.parameters()),
            "attn_weights_row": [round(v, 6) for v in attn_weights[0, 0].tolist()],
            "attn_out_sum": attn_out.sum().item()}


def main():
    results = {"tagger": run_tagger(), "bilstm": run_bilstm(),
               "transformer": run_transformer()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
