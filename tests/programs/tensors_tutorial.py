"""The tensors tutorial's operations, as a first script tries them: creation from data, numpy and
other tensors, shape/dtype/device attributes, indexing and slicing, joining, arithmetic and
matrix products, in-place ops, reductions, comparisons and the numpy bridge (memory shared both
ways).
"""
import json

import numpy as np
import torch

torch.manual_seed(0)


def main():
    out = {}
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)
    x_full = torch.full_like(x_data, 7)
    x_zeros = torch.zeros(2, 3, dtype=torch.float)
    out["creation"] = [x_data.tolist(), x_np.tolist(), x_ones.tolist(), x_full.tolist(),
                       x_zeros.tolist(), torch.arange(0, 1, 0.25).tolist(),
                       torch.linspace(-1, 1, 5).tolist(), torch.eye(3).sum().item()]
    out["dtypes"] = [x_data.dtype == torch.int64, x_zeros.dtype == torch.float32,
                     torch.tensor([1.5]).dtype == torch.float32,
                     torch.tensor([True]).dtype == torch.bool,
                     (x_data / 2).dtype == torch.float32, (x_data // 2).dtype == torch.int64]
    tensor = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    out["attrs"] = [list(tensor.shape), tensor.size(1), tensor.dim(), tensor.numel(),
                    str(tensor.device)]
    out["index"] = [tensor[0].tolist(), tensor[:, 0].tolist(), tensor[..., -1].tolist(),
                    tensor[1:3, ::2].tolist(), tensor[tensor > 10].tolist(),
                    tensor[[0, 2], [1, 3]].tolist()]
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    out["join"] = [list(t1.shape), torch.stack([tensor, tensor]).shape[0],
                   tensor.T.tolist()[1], tensor.unsqueeze(0).shape[0],
                   [c.tolist() for c in tensor.chunk(2, dim=0)][1]]
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(y1)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    out["arith"] = [y1.tolist(), bool(torch.equal(y1, y2)), bool(torch.allclose(y1, y3)),
                    bool(torch.equal(z1, z2)), (tensor - 1).abs().max().item(),
                    torch.clamp(tensor, 2, 9).sum().item()]
    agg = tensor.sum()
    agg_item = agg.item()
    out["reduce"] = [agg_item, tensor.mean(dim=0).tolist(), tensor.std().item(),
                     tensor.max(dim=1).values.tolist(), tensor.argmax(dim=1).tolist(),
                     tensor.var(dim=1, unbiased=False).tolist(), tensor.prod(dim=0).tolist(),
                     tensor.cumsum(0)[-1].tolist(), tensor.norm().item()]
    tensor.add_(5)
    tensor.mul_(0.5).sub_(1)
    out["inplace"] = tensor.tolist()
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    shared_from_tensor = n.tolist()
    n2 = np.ones(5)
    t2 = torch.from_numpy(n2)
    np.add(n2, 1, out=n2)
    out["bridge"] = [shared_from_tensor, t2.tolist(), str(type(t.numpy()).__name__)]
    a = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    out["compare"] = [(a > 0).tolist(), torch.where(a > 0, a, torch.zeros_like(a)).tolist(),
                      a.eq(0).any().item(), (a != 0).all(dim=1).tolist(),
                      torch.sort(a, dim=1, descending=True).values.tolist(),
                      torch.topk(a.flatten(), 2).indices.tolist()]
    out["views"] = [a.view(-1).tolist(), a.flatten().tolist(), a.permute(1, 0).shape[0],
                    a.t().contiguous().view(3, 2).tolist(), a.squeeze().shape[1],
                    a.expand(3, 2, 3).shape[0], a.repeat(2, 1).shape[0],
                    a.flip(1).tolist(), a.roll(1, dims=1).tolist()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
