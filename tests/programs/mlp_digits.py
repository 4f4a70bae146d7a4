"""A tutorial-style MLP on scikit-learn's 8x8 digits: an nn.Module subclass, TensorDataset and
DataLoader, CrossEntropyLoss, SGD with momentum, a train loop and an eval loop with accuracy.

Weights start from a numpy-generated state dict (load_state_dict), so any library that speaks
PyTorch's dialect starts from the same point; the last stdout line is the results as JSON.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def numpy_init(model, seed=0):
    """A state dict drawn with numpy: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as nn.Linear."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, t in model.state_dict().items():
        fan_in = t.shape[1] if t.dim() == 2 else model.state_dict()[name[:-4] + "weight"].shape[1]
        bound = 1.0 / np.sqrt(fan_in)
        state[name] = torch.tensor(rng.uniform(-bound, bound, tuple(t.shape)).astype(np.float32))
    model.load_state_dict(state)


def train(model, loader, optimizer, criterion):
    model.train()
    total, n = 0.0, 0
    for data, target in loader:
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        total += loss.item() * data.size(0)
        n += data.size(0)
    return total / n


def evaluate(model, loader, criterion):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            loss += criterion(output, target).item() * len(data)
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return loss / len(loader.dataset), correct


def main():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(1).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    x_test, y_test = torch.tensor(x[1400:]), torch.tensor(y[1400:])

    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=False)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=128)

    model = Net()
    numpy_init(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    history = []
    for epoch in range(1, 4):
        train_loss = train(model, train_loader, optimizer, criterion)
        test_loss, correct = evaluate(model, test_loader, criterion)
        print(f"epoch {epoch}: train loss {train_loss:.4f}, test loss {test_loss:.4f}, "
              f"accuracy {correct}/{len(test_loader.dataset)}")
        history.append({"train_loss": train_loss, "test_loss": test_loss, "correct": correct})

    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({"history": history, "n_params": n_params,
                      "fc3_bias": model.fc3.bias.detach().tolist()}))


if __name__ == "__main__":
    main()
