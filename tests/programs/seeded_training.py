"""Training from the seed alone, as most PyTorch programs do: torch.manual_seed(0), then the
layers' own initialisation (no state dict is loaded), dropout in training, a shuffled
DataLoader, random_split and randn/randint data. A CNN and a GRU classifier on scikit-learn's
8x8 digits, and an embedding + LSTM model on random token sequences.

Every number printed depends on the random stream: the initial weights, the split, the batch
order and the dropout masks. The last stdout line is the results as JSON.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset, random_split
from sklearn.datasets import load_digits

torch.manual_seed(0)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.25)
        self.fc1 = nn.Linear(8 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        x = self.drop(torch.flatten(x, 1))
        return self.fc2(F.relu(self.fc1(x)))


class RowGRU(nn.Module):
    """Reads an image row by row (8 steps of 8 pixels)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 24, batch_first=True)
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        out, h = self.gru(x)
        return self.head(F.dropout(h[-1], 0.1, self.training))


class TokenLSTM(nn.Module):
    def __init__(self, vocab=20, dim=12, hidden=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 2)

    def forward(self, ids):
        h, _ = self.lstm(self.emb(ids))
        return self.out(h[:, -1])


def param_sums(model):
    return [round(float(p.detach().double().sum()), 6) for p in model.parameters()]


def fit(model, loader, epochs, lr):
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for _ in range(epochs):
        model.train()
        total, n = 0.0, 0
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            n += len(yb)
        losses.append(total / n)
    return losses


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


digits = load_digits()
images = torch.tensor(digits.data.astype(np.float32) / 16.0)
labels = torch.tensor(digits.target.astype(np.int64))
data = TensorDataset(images, labels)
train_set, test_set = random_split(data, [1400, len(data) - 1400])
test_idx = torch.tensor(test_set.indices)
x_test, y_test = images[test_idx], labels[test_idx]

results = {"split_head": list(test_set.indices[:5])}

cnn = CNN()
results["cnn_init"] = param_sums(cnn)
loader = DataLoader(train_set, batch_size=64, shuffle=True)
first = next(iter(loader))[1][:8].tolist()
results["first_batch_labels"] = first


class Reshape:
    def __init__(self, loader, shape):
        self.loader, self.shape = loader, shape

    def __iter__(self):
        for xb, yb in self.loader:
            yield xb.reshape(self.shape), yb


results["cnn_losses"] = fit(cnn, Reshape(loader, (-1, 1, 8, 8)), epochs=2, lr=0.05)
results["cnn_acc"] = accuracy(cnn, x_test.reshape(-1, 1, 8, 8), y_test)

gru = RowGRU()
results["gru_init"] = param_sums(gru)
results["gru_losses"] = fit(gru, Reshape(loader, (-1, 8, 8)), epochs=2, lr=0.1)
results["gru_acc"] = accuracy(gru, x_test.reshape(-1, 8, 8), y_test)

# a toy task on random tokens: is token 3 in the sequence?
ids = torch.randint(0, 20, (256, 10))
target = (ids == 3).any(1).long()
lstm = TokenLSTM()
results["lstm_init"] = param_sums(lstm)
noise = torch.randn(4)
results["noise"] = [round(float(v), 6) for v in noise]
tok_loader = DataLoader(TensorDataset(ids, target), batch_size=32, shuffle=True)
results["lstm_losses"] = fit(lstm, tok_loader, epochs=3, lr=0.2)
results["after"] = [round(float(v), 6) for v in torch.rand(3)]   # the stream's position

print(json.dumps(results))
