"""Time-series prediction in the style of PyTorch's time_sequence_prediction example: two
stacked nn.LSTMCell layers in float64 (model.double()), unrolled by hand over
input.split(1, dim=1) with zero initial states, trained on shifted sine waves by
optim.LBFGS with a closure, then asked to continue the waves 20 steps past the data under
torch.no_grad(). The data are made with numpy and saved/loaded with torch.save/torch.load as a
tensor. The last stdout line is the results as JSON."""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

# compare: losses rtol=1e-3 atol=1e-6
# compare: future rtol=1e-3 atol=1e-5


class Sequence(nn.Module):
    def __init__(self, hidden=12):
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def main():
    np.random.seed(2)
    T, L, N = 20, 40, 8
    x = np.empty((N, L), "int64")
    x[:] = np.array(range(L)) + np.random.randint(-4 * T, 4 * T, N).reshape(N, 1)
    torch.save(torch.from_numpy(np.sin(x / 1.0 / T)), "traindata.pt")

    torch.manual_seed(0)
    data = torch.load("traindata.pt")
    input, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]
    seq = Sequence()
    seq.double()
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=5)
    losses = []
    for i in range(2):
        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            loss.backward()
            return loss
        loss = optimizer.step(closure)
        losses.append(loss.item())
        with torch.no_grad():
            future = 20
            pred = seq(test_input, future=future)
            test_loss = criterion(pred[:, :-future], test_target)
            print(f"step {i}: loss {losses[-1]:.6f} test {test_loss.item():.6f}")
    print(json.dumps({"losses": losses, "test_loss": test_loss.item(),
                      "future": pred[:, -5:].reshape(-1).tolist(),
                      "dtype": str(pred.dtype)}))


if __name__ == "__main__":
    main()
