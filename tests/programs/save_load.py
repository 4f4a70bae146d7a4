"""Saving and loading as PyTorch's "Saving and Loading Models" tutorial does it, across libraries:

    python save_load.py save DIR    trains a little, then writes DIR/model.pt (a state dict),
                                    DIR/checkpoint.pt (epoch, model and optimizer state dicts,
                                    loss) and DIR/tensors.pt (a dict of plain tensors)
    python save_load.py load DIR    loads them into a fresh model and optimizer (torch.load with
                                    weights_only=True and map_location), evaluates, resumes
                                    training for two steps

tests/test_programs.py runs `save` under one library and `load` under the other. Both modes
print their numbers as JSON on the last line.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.fc1 = nn.Linear(6 + 4, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, tokens, features):
        x = torch.cat([self.embed(tokens), features], dim=1)
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def data():
    rng = np.random.default_rng(11)
    tokens = torch.from_numpy(rng.integers(0, 10, 32))
    features = torch.from_numpy(rng.standard_normal((32, 4)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 3, 32))
    return tokens, features, labels


def numpy_init(model):
    rng = np.random.default_rng(12)
    state = {}
    for name, t in model.state_dict().items():
        if name.startswith("bn."):
            state[name] = t  # BatchNorm's own initial weight, bias and running statistics
        else:
            state[name] = torch.from_numpy((0.3 * rng.standard_normal(tuple(t.shape)))
                                           .astype(np.float32))
    model.load_state_dict(state)


def train_steps(model, optimizer, n):
    tokens, features, labels = data()
    model.train()
    losses = []
    for _ in range(n):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens, features), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def evaluate(model):
    tokens, features, _ = data()
    model.eval()
    with torch.no_grad():
        return model(tokens, features)[:4].tolist()


def save(directory):
    model = Net()
    numpy_init(model)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = train_steps(model, optimizer, 3)
    torch.save(model.state_dict(), os.path.join(directory, "model.pt"))
    torch.save({"epoch": 3, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": losses[-1]},
               os.path.join(directory, "checkpoint.pt"))
    torch.save({"weights": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                "ids": torch.tensor([3, 1, 2]), "flags": torch.tensor([True, False])},
               os.path.join(directory, "tensors.pt"))
    return {"losses": losses, "eval": evaluate(model)}


def load(directory):
    model = Net()
    state = torch.load(os.path.join(directory, "model.pt"), weights_only=True)
    result = model.load_state_dict(state)
    out = {"keys": list(state.keys()), "missing": list(result.missing_keys),
           "unexpected": list(result.unexpected_keys),
           "num_batches_tracked": int(model.bn.num_batches_tracked),
           "eval": evaluate(model)}

    model = Net()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    checkpoint = torch.load(os.path.join(directory, "checkpoint.pt"), map_location="cpu",
                            weights_only=True)
    model.load_state_dict(checkpoint["model_state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    out["epoch"] = checkpoint["epoch"]
    out["loss"] = checkpoint["loss"]
    out["resumed"] = train_steps(model, optimizer, 2)

    tensors = torch.load(os.path.join(directory, "tensors.pt"), map_location=torch.device("cpu"))
    out["tensors"] = {k: v.tolist() for k, v in sorted(tensors.items())}
    out["dtypes_match"] = [tensors["weights"].dtype == torch.float32,
                           tensors["ids"].dtype == torch.int64,
                           tensors["flags"].dtype == torch.bool]
    return out


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    result = save(directory) if mode == "save" else load(directory)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
