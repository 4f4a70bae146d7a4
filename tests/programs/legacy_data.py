"""The `.data` idioms of older tutorials and of much code still in use (DCGAN's weights_init,
hand-written SGD through .data, copying weights in through .data): `.data` is a Tensor that
shares storage with the parameter and sits outside autograd.

    m.weight.data.normal_(0.0, 0.02); m.bias.data.fill_(0)
    p.data.add_(p.grad.data, alpha=-lr); p.grad.data.zero_()
    p.data.copy_(...); p.data = new_tensor
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Linear") != -1:
        m.weight.data.fill_(0.05)
        m.bias.data.zero_()


def main():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((32, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 32))
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    model.apply(weights_init)
    model[0].weight.data.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, (8, 4))
                                                .astype(np.float32)))
    model[2].bias.data = torch.tensor([0.1, -0.1, 0.0])
    lr = 0.5
    losses = []
    for step in range(20):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data.add_(p.grad.data, alpha=-lr)
        losses.append(loss.item())
    w = model[2].weight
    print(json.dumps({"losses": losses, "data_is_tensor": isinstance(w.data, torch.Tensor),
                      "data_requires_grad": w.data.requires_grad,
                      "bias": model[2].bias.tolist()}))


if __name__ == "__main__":
    main()
