"""A DCGAN in the style of PyTorch's DCGAN tutorial, shrunk to 8x8 images: the tutorial's
`weights_init` (conv weights from N(0, 0.02), batch-norm weights from N(1, 0.02) and biases
filled with 0, all through `.data`), applied with `Module.apply`; then the weights are copied
in through `.data.copy_` and `.data = ` from a numpy generator, so that both libraries train from the same
point, and a few steps of the tutorial's alternating updates (BCELoss, Adam with betas
(0.5, 0.999), `label.fill_`, `fake.detach()`).
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(999)
nz, ngf, ndf = 8, 16, 16
real_label, fake_label = 1.0, 0.0


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input)


def init_stats(net):
    """What weights_init did, in terms that do not depend on the random stream."""
    out = {}
    for name, p in net.named_parameters():
        if p.dim() == 4:
            out[name] = abs(p.data.std().item() - 0.02) < 0.004
        elif name.endswith("weight"):
            out[name] = abs(p.data.mean().item() - 1.0) < 0.02
        else:
            out[name] = bool((p.data == 0).all())
    return out


def main():
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    stats = {"G": init_stats(netG), "D": init_stats(netD)}

    rng = np.random.default_rng(0)
    for net in (netG, netD):
        for name, p in net.named_parameters():
            if p.dim() == 4:
                p.data.copy_(torch.from_numpy(rng.normal(0, 0.1, p.shape).astype(np.float32)))
            elif name.endswith("weight"):
                p.data = torch.from_numpy(rng.normal(1, 0.02, p.shape).astype(np.float32))

    # "real" images: a bright square at a random place on a dark background
    n = 64
    imgs = -np.ones((n, 1, 8, 8), np.float32)
    for i, (r, c) in enumerate(rng.integers(0, 5, (n, 2))):
        imgs[i, 0, r:r + 3, c:c + 3] = 1.0
    noise_all = rng.standard_normal((6, 16, nz, 1, 1)).astype(np.float32)

    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    errDs, errGs, d_x = [], [], []
    for i in range(6):
        real = torch.from_numpy(imgs[i * 8:(i + 1) * 8 + 8])
        b_size = real.size(0)
        netD.zero_grad()
        label = torch.full((b_size,), real_label, dtype=torch.float)
        output = netD(real).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        noise = torch.from_numpy(noise_all[i])
        fake = netG(noise)
        label = torch.full((fake.size(0),), fake_label, dtype=torch.float)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        optimizerD.step()

        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
        errDs.append(errD.item())
        errGs.append(errG.item())
        d_x.append(D_x)

    with torch.no_grad():
        sample = netG(torch.from_numpy(noise_all[0][:2]))
    print(json.dumps({"init": stats, "errD": errDs, "errG": errGs, "D_x": d_x,
                      "sample_shape": list(sample.shape),
                      "running_mean": netG.main[1].running_mean[:4].tolist()}))


if __name__ == "__main__":
    main()
