"""Numerical programs that lean on torch.linalg, torch.special and torch.fft, written here in
the style of scientific PyTorch scripts:

1. Gaussian-process regression: an RBF kernel from torch.cdist, its Cholesky factor
   (torch.linalg.cholesky), the negative log marginal likelihood through
   torch.linalg.solve_triangular / torch.cholesky_solve and the log-determinant, and the
   kernel's hyperparameters (log lengthscale, log noise) fitted by Adam through all of it.
2. A Student-t regression: the likelihood through torch.lgamma, fitted by LBFGS.
3. Spectral features: torch.fft.rfft of noisy sine windows, the power spectrum's peak bin, a
   high-pass filter through irfft, and a Gaussian mixture's log-density via
   MultivariateNormal.log_prob and torch.logsumexp.

The last stdout line is the results as JSON."""
import json
import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal

torch.manual_seed(0)


def gaussian_process():
    rng = np.random.default_rng(0)
    x = torch.tensor(np.sort(rng.uniform(-3, 3, 40)), dtype=torch.float64).unsqueeze(1)
    y = torch.sin(2 * x).squeeze(1) + 0.1 * torch.tensor(rng.standard_normal(40))
    log_ls = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    log_noise = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_ls, log_noise], lr=0.05)

    def nll():
        d = torch.cdist(x, x)
        K = torch.exp(-0.5 * (d / log_ls.exp()) ** 2) + (log_noise.exp() ** 2 + 1e-6) * \
            torch.eye(40, dtype=torch.float64)
        L = torch.linalg.cholesky(K)
        alpha = torch.cholesky_solve(y.unsqueeze(1), L)
        z = torch.linalg.solve_triangular(L, y.unsqueeze(1), upper=False)
        logdet = 2 * torch.log(torch.diagonal(L)).sum()
        fit = 0.5 * (z ** 2).sum()
        return fit + 0.5 * logdet + 20 * math.log(2 * math.pi), alpha, K

    history = []
    for step in range(40):
        opt.zero_grad()
        loss, _, _ = nll()
        loss.backward()
        opt.step()
        history.append(loss.item())
    with torch.no_grad():
        loss, alpha, K = nll()
        x_star = torch.linspace(-3, 3, 7, dtype=torch.float64).unsqueeze(1)
        k_star = torch.exp(-0.5 * (torch.cdist(x_star, x) / log_ls.exp()) ** 2)
        mean = (k_star @ alpha).squeeze(1)
        sign, logabsdet = torch.linalg.slogdet(K)
        eig = torch.linalg.eigvalsh(K)
    return {"history": history[::10], "lengthscale": log_ls.exp().item(),
            "noise": log_noise.exp().item(), "mean": mean.tolist(),
            "slogdet": [sign.item(), logabsdet.item()],
            "cond": (eig.max() / eig.min()).item(), "inv_trace": torch.inverse(K).trace().item()}


def student_t():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal(60), dtype=torch.float64)
    y = 1.5 * x + 0.3 + torch.tensor(rng.standard_t(3, 60), dtype=torch.float64) * 0.5
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    log_scale = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    nu = 4.0
    opt = torch.optim.LBFGS([w, log_scale], lr=0.5, max_iter=30,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        r = (y - (w[0] * x + w[1])) / log_scale.exp()
        logp = (torch.lgamma(torch.tensor((nu + 1) / 2)) - torch.lgamma(torch.tensor(nu / 2))
                - 0.5 * math.log(nu * math.pi) - log_scale
                - (nu + 1) / 2 * torch.log1p(r ** 2 / nu))
        loss = -logp.mean()
        loss.backward()
        return loss

    final = opt.step(closure)
    return {"w": w.tolist(), "scale": log_scale.exp().item(), "nll": final.item(),
            "digamma": torch.special.digamma(torch.tensor([nu])).item(),
            "erfinv": torch.special.erfinv(torch.tensor([0.5, -0.25])).tolist()}


def spectra():
    t = torch.arange(64, dtype=torch.float32) / 64
    freqs = torch.tensor([3.0, 7.0, 12.0])
    signals = torch.sin(2 * math.pi * freqs.unsqueeze(1) * t) + 0.2 * torch.randn(3, 64)
    spec = torch.fft.rfft(signals)
    power = spec.abs() ** 2
    peak = power[:, 1:].argmax(dim=1) + 1
    keep = (torch.fft.rfftfreq(64, d=1 / 64) > 5).float()
    high = torch.fft.irfft(spec * keep, n=64)
    mix_means = torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    comps = MultivariateNormal(mix_means, covariance_matrix=torch.eye(2).expand(2, 2, 2) * 0.5)
    pts = torch.tensor([[0.1, -0.2], [2.5, 3.1], [1.5, 1.5]])
    log_dens = torch.logsumexp(comps.log_prob(pts.unsqueeze(1)) + math.log(0.5), dim=1)
    return {"peak_bins": peak.tolist(), "high_energy": (high ** 2).sum(1).tolist(),
            "centered": torch.fft.fftshift(torch.fft.fftfreq(8)).tolist(),
            "log_density": log_dens.tolist()}


def main():
    print(json.dumps({"gp": gaussian_process(), "student_t": student_t(),
                      "spectra": spectra()}))


if __name__ == "__main__":
    main()
