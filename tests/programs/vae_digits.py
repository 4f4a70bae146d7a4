"""A variational autoencoder on scikit-learn's 8x8 digits, written as PyTorch's VAE example
writes it but with torch.distributions: the encoder gives Normal(mu, std) over a 4-D latent,
z = q.rsample() (the reparameterisation trick), the decoder's pixels are Bernoulli(logits=...),
and the loss is -log p(x|z) + KL(q || N(0, I)) through kl_divergence and Independent. A
DataLoader shuffles the batches; Adam trains two epochs; the test ELBO is averaged under
no_grad; samples are decoded from the prior. The last stdout line is the results as JSON.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

# compare: test_elbo rtol=1e-3 atol=1e-4

torch.manual_seed(7)


class VAE(nn.Module):
    def __init__(self, latent=4):
        super().__init__()
        self.fc1 = nn.Linear(64, 48)
        self.fc_mu = nn.Linear(48, latent)
        self.fc_logvar = nn.Linear(48, latent)
        self.fc3 = nn.Linear(latent, 48)
        self.fc4 = nn.Linear(48, 64)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))          # logits

    def forward(self, x):
        mu, logvar = self.encode(x)
        q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
        z = q.rsample()
        return self.decode(z), q


def elbo_terms(model, x):
    logits, q = model(x)
    prior = Independent(Normal(torch.zeros_like(q.mean), torch.ones_like(q.mean)), 1)
    recon = Independent(Bernoulli(logits=logits), 1).log_prob(x)
    kl = kl_divergence(q, prior)
    return recon, kl


def main():
    digits = load_digits()
    x = torch.tensor((digits.data / 16.0 > 0.5).astype(np.float32))
    train, test = TensorDataset(x[:640]), TensorDataset(x[1200:1400])
    loader = DataLoader(train, batch_size=64, shuffle=True)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for epoch in range(2):
        model.train()
        total = 0.0
        for (batch,) in loader:
            recon, kl = elbo_terms(model, batch)
            loss = -(recon - kl).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / len(train))
        print(f"epoch {epoch}: loss {history[-1]:.4f}")
    model.eval()
    with torch.no_grad():
        recon, kl = elbo_terms(model, test.tensors[0])
        samples = torch.sigmoid(model.decode(torch.randn(5, 4)))
    print(json.dumps({"history": history, "test_elbo": (recon - kl).mean().item(),
                      "test_kl": kl.mean().item(), "sample_means": samples.mean(1).tolist()}))


if __name__ == "__main__":
    main()
