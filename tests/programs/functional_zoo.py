"""The activations and losses that model code reaches for, each applied to the same inputs with
its gradient taken, as a quick check script would do: torch.nn.functional's and torch.nn's
activations (SiLU, Mish, ELU, SELU, CELU, ReLU6, Hardtanh, Hardswish, Hardsigmoid, Softsign,
Softplus, LogSigmoid, Softmin, GLU, Threshold), F.pad, F.one_hot, F.normalize and
F.cosine_similarity, and the losses (BCE, BCE with logits and pos_weight, L1, smooth L1, Huber,
KL divergence, NLL) with each reduction, and cross-entropy with class weights, label smoothing
and probability targets.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


def value_and_grad(fn, x_np):
    x = torch.tensor(x_np, requires_grad=True)
    y = fn(x)
    (y * y).sum().backward() if y.dim() else y.backward()
    return {"value": y.detach().flatten().tolist(), "grad": x.grad.flatten().tolist()}


def main():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20) * 3,
                        [-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 25.0]]).astype(np.float32)
    x = x.reshape(4, 7)
    probs = rng.uniform(0.05, 0.95, (4, 7)).astype(np.float32)
    target01 = (rng.uniform(size=(4, 7)) > 0.6).astype(np.float32)
    labels = torch.tensor([0, 6, 3, 2])

    acts = {
        "silu": nn.SiLU(), "mish": nn.Mish(), "elu": nn.ELU(alpha=0.5), "selu": nn.SELU(),
        "celu": nn.CELU(alpha=2.0), "relu6": nn.ReLU6(), "hardtanh": nn.Hardtanh(-2.0, 2.0),
        "hardswish": nn.Hardswish(), "hardsigmoid": nn.Hardsigmoid(), "softsign": nn.Softsign(),
        "softplus": nn.Softplus(beta=2.0, threshold=10.0), "logsigmoid": nn.LogSigmoid(),
        "softmin": nn.Softmin(dim=1), "threshold": nn.Threshold(0.5, -1.0),
    }
    results = {name: value_and_grad(m, x) for name, m in acts.items()}
    results["glu"] = value_and_grad(lambda t: F.glu(t[:, :6], dim=1), x)
    results["pad"] = value_and_grad(lambda t: F.pad(t, (2, 1, 0, 1), value=0.5) * 2, x)
    results["crop"] = value_and_grad(lambda t: F.pad(t, (-1, -2)), x)
    results["one_hot"] = F.one_hot(labels, num_classes=8).tolist()
    results["normalize"] = value_and_grad(lambda t: F.normalize(t, p=2.0, dim=1), x)
    results["cosine"] = value_and_grad(
        lambda t: F.cosine_similarity(t, torch.tensor(probs) - 0.5, dim=1), x)

    losses = {}
    for reduction in ["mean", "sum", "none"]:
        losses[reduction] = {
            "bce": value_and_grad(lambda t: F.binary_cross_entropy(
                torch.sigmoid(t), torch.tensor(probs), reduction=reduction), x),
            "bce_logits": value_and_grad(lambda t: nn.BCEWithLogitsLoss(
                pos_weight=torch.full((7,), 2.0), reduction=reduction)(t, torch.tensor(target01)),
                x),
            "l1": value_and_grad(lambda t: nn.L1Loss(reduction=reduction)(t, torch.tensor(probs)),
                                 x),
            "smooth_l1": value_and_grad(lambda t: F.smooth_l1_loss(
                t, torch.tensor(probs) * 4, beta=0.5, reduction=reduction), x),
            "huber": value_and_grad(lambda t: nn.HuberLoss(reduction=reduction, delta=1.5)(
                t, torch.tensor(probs) * 4), x),
            "nll": value_and_grad(lambda t: nn.NLLLoss(reduction=reduction)(
                F.log_softmax(t, dim=1), labels), x),
        }
    soft = torch.tensor(probs / probs.sum(1, keepdims=True))
    class_weight = torch.tensor([0.5, 1.0, 2.0, 1.0, 0.7, 1.3, 1.0])
    losses["cross_entropy"] = {
        "weighted": value_and_grad(lambda t: nn.CrossEntropyLoss(weight=class_weight)(t, labels),
                                   x),
        "smoothed": value_and_grad(lambda t: nn.CrossEntropyLoss(label_smoothing=0.1)(t, labels),
                                   x),
        "both_sum": value_and_grad(lambda t: F.cross_entropy(
            t, labels, weight=class_weight, label_smoothing=0.2, reduction="sum"), x),
        "ignore": value_and_grad(lambda t: F.cross_entropy(
            t, torch.tensor([0, -100, 3, 2]), label_smoothing=0.1, reduction="none"), x),
        "soft_targets": value_and_grad(lambda t: F.cross_entropy(t, soft), x),
        "soft_smoothed": value_and_grad(lambda t: F.cross_entropy(t, soft, label_smoothing=0.1),
                                        x),
    }
    losses["kl_batchmean"] = value_and_grad(lambda t: nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(t, dim=1), torch.tensor(probs / probs.sum(1, keepdims=True))), x)
    losses["kl_log_target"] = value_and_grad(lambda t: F.kl_div(
        F.log_softmax(t, dim=1), F.log_softmax(torch.tensor(probs), dim=1), reduction="sum",
        log_target=True), x)
    results["losses"] = losses
    print(json.dumps(results))


if __name__ == "__main__":
    main()
