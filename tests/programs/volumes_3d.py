"""A small 3-D convolutional network on synthetic volumes, with the weight reparametrisations
real training scripts use: nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AvgPool3d,
nn.AdaptiveAvgPool3d, nn.Dropout3d and nn.ConvTranspose3d (an autoencoder branch), with
torch.nn.utils.parametrizations.weight_norm on a convolution and spectral_norm on the
classifier (as GAN discriminators use it). The task: does a volume hold a bright cube or a
bright bar? SGD with momentum for a few epochs over a DataLoader; eval accuracy; the state
dict's keys. The last stdout line is the results as JSON."""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrizations
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(5)


def make_volumes(n):
    x = 0.1 * torch.randn(n, 1, 8, 8, 8)
    y = torch.randint(0, 2, (n,))
    for i in range(n):
        a, b, c = torch.randint(0, 5, (3,)).tolist()
        if y[i] == 0:
            x[i, 0, a:a + 3, b:b + 3, c:c + 3] += 1.0
        else:
            x[i, 0, a:a + 3, b, c] += 2.0
    return x, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = parametrizations.weight_norm(nn.Conv3d(1, 4, 3, padding=1))
        self.bn1 = nn.BatchNorm3d(4)
        self.conv2 = nn.Conv3d(4, 8, 3, padding=1, groups=2)
        self.drop = nn.Dropout3d(0.1)
        self.head = parametrizations.spectral_norm(nn.Linear(8, 2))
        self.up = nn.ConvTranspose3d(4, 1, 2, stride=2)

    def forward(self, x):
        h = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), 2)          # (N, 4, 4, 4, 4)
        recon = self.up(h)                                             # (N, 1, 8, 8, 8)
        g = self.drop(F.relu(self.conv2(h)))
        g = nn.AdaptiveAvgPool3d(1)(F.avg_pool3d(g, 2)).flatten(1)
        return self.head(g), recon


def main():
    x, y = make_volumes(96)
    loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = []
    for epoch in range(4):
        model.train()
        total = 0.0
        for xb, yb in loader:
            logits, recon = model(xb)
            loss = F.cross_entropy(logits, yb) + 0.1 * F.mse_loss(recon, xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(loader))
    model.eval()
    with torch.no_grad():
        logits, recon = model(x[64:])
        acc = (logits.argmax(1) == y[64:]).float().mean().item()
        sigma = torch.linalg.matrix_norm(model.head.weight, 2).item()
    print(json.dumps({"history": history, "accuracy": acc, "head_sigma": sigma,
                      "recon_err": F.mse_loss(recon, x[64:]).item(),
                      "keys": list(model.state_dict().keys())}))


if __name__ == "__main__":
    main()
