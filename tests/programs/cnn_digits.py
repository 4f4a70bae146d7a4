"""A CNN on scikit-learn's 8x8 digits in the style of PyTorch's MNIST example: Conv2d, BatchNorm2d,
MaxPool2d, Dropout, F.log_softmax + F.nll_loss, Adam, a train loop and a test loop.

Convolutions feeding BatchNorm have no bias (BatchNorm cancels it, and Adam would turn its
rounding-noise gradient into real steps). Dropout draws from the library's random stream, which
differs between libraries, so training keeps the Dropout module in eval mode
(`model.dropout.eval()` after `model.train()`); BatchNorm trains with batch statistics and
evaluates with its running ones.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset
from sklearn.datasets import load_digits

torch.manual_seed(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def numpy_init(model, seed=0):
    """Every weight drawn with numpy (Kaiming-uniform-like bounds), biases zero; BatchNorm
    affine weights one, so both libraries start from the same parameters."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("bn"):
                continue
            if p.dim() > 1:
                fan_in = int(np.prod(p.shape[1:]))
                bound = np.sqrt(6.0 / fan_in)
                p.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(p.shape))
                                         .astype(np.float32)))
            else:
                p.zero_()


def train(model, loader, optimizer, epoch):
    model.train()
    model.dropout.eval()
    losses = []
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % 10 == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.dataset)}]"
                  f"\tLoss: {loss.item():.6f}")
    return losses


def test(model, loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(loader.dataset)
    print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(loader.dataset)}")
    return test_loss, correct


def main():
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]   # N, 1, 8, 8
    mean, std = images.mean(), images.std()
    images = (images - mean) / std
    labels = digits.target
    order = np.random.default_rng(2).permutation(len(images))
    images, labels = images[order], labels[order]
    train_set = TensorDataset(torch.tensor(images[:1200]), torch.tensor(labels[:1200]))
    test_set = TensorDataset(torch.tensor(images[1200:]), torch.tensor(labels[1200:]))
    train_loader = DataLoader(train_set, batch_size=50)
    test_loader = DataLoader(test_set, batch_size=100)

    model = Net()
    numpy_init(model)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    results = {"train_losses": [], "test": []}
    for epoch in range(1, 3):
        results["train_losses"] += train(model, train_loader, optimizer, epoch)
        test_loss, correct = test(model, test_loader)
        results["test"].append({"loss": test_loss, "correct": correct})
    results["running_mean"] = model.bn2.running_mean.tolist()
    results["num_batches_tracked"] = int(model.bn2.num_batches_tracked)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
