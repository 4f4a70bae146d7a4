"""Policy-gradient reinforcement learning in the style of PyTorch's reinforcement_learning
examples, with a small environment written here (no gym):

1. REINFORCE with a learned baseline (actor-critic style) on a "corridor": the agent starts in
   the middle, steps left or right, and is paid at the right end. The policy samples actions
   from torch.distributions.Categorical; the loss is -log_prob * advantage plus the critic's
   smooth_l1_loss, optimised with Adam; returns are discounted and normalised.
2. A Gaussian policy on a continuous bandit: Normal(mu, exp(log_std)) actions, REINFORCE through
   log_prob, an entropy bonus, and the reparameterised rsample() for a pathwise estimate.

Both libraries draw the same samples from the same seed, so the episodes match step for step.
The last stdout line is the results as JSON.
"""
import json
from collections import deque

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical, Normal

torch.manual_seed(3)


class Corridor:
    """Positions 0..6; start at 3; +1 at 6, -0.05 per step, at most 20 steps."""

    def reset(self):
        self.pos, self.t = 3, 0
        return self.obs()

    def obs(self):
        one_hot = np.zeros(7, np.float32)
        one_hot[self.pos] = 1.0
        return one_hot

    def step(self, action):
        self.pos = max(0, min(6, self.pos + (1 if action == 1 else -1)))
        self.t += 1
        done = self.pos == 6 or self.t >= 20
        reward = 1.0 if self.pos == 6 else -0.05
        return self.obs(), reward, done


class ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(7, 32)
        self.action_head = nn.Linear(32, 2)
        self.value_head = nn.Linear(32, 1)

    def forward(self, x):
        h = F.relu(self.body(x))
        return F.softmax(self.action_head(h), dim=-1), self.value_head(h)


def corridor():
    env, model = Corridor(), ActorCritic()
    optimizer = optim.Adam(model.parameters(), lr=3e-2)
    eps = np.finfo(np.float32).eps.item()
    lengths, losses = [], []
    for episode in range(25):
        state, log_probs, values, rewards = env.reset(), [], [], []
        done = False
        while not done:
            probs, value = model(torch.from_numpy(state).float())
            m = Categorical(probs)
            action = m.sample()
            log_probs.append(m.log_prob(action))
            values.append(value)
            state, reward, done = env.step(action.item())
            rewards.append(reward)
        R, returns = 0.0, deque()
        for r in rewards[::-1]:
            R = r + 0.9 * R
            returns.appendleft(R)
        returns = torch.tensor(returns)
        if len(returns) > 1:
            returns = (returns - returns.mean()) / (returns.std() + eps)
        policy_losses, value_losses = [], []
        for log_prob, value, R in zip(log_probs, values, returns):
            advantage = R - value.item()
            policy_losses.append(-log_prob * advantage)
            value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
        optimizer.zero_grad()
        loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
        loss.backward()
        optimizer.step()
        lengths.append(len(rewards))
        losses.append(loss.item())
    with torch.no_grad():
        probs, _ = model(torch.eye(7))
    return {"lengths": lengths, "losses": losses,
            "p_right": [round(p, 5) for p in probs[:, 1].tolist()],
            "entropy": Categorical(probs).entropy().mean().item()}


def gaussian_bandit():
    """Pay -(a - 2)^2: the policy's mean should move towards 2."""
    mu = nn.Parameter(torch.zeros(1))
    log_std = nn.Parameter(torch.zeros(1))
    optimizer = optim.SGD([mu, log_std], lr=0.05)
    history = []
    for step in range(40):
        dist = Normal(mu, log_std.exp())
        actions = dist.sample((16,))
        rewards = -(actions - 2.0) ** 2
        advantage = rewards - rewards.mean()
        loss = -(dist.log_prob(actions) * advantage).mean() - 0.01 * dist.entropy().sum()
        # and a pathwise (reparameterised) term on a few more draws
        loss = loss + 0.1 * ((dist.rsample((4,)) - 2.0) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(round(loss.item(), 6))
    return {"mu": mu.item(), "std": log_std.exp().item(), "history": history[::5]}


def main():
    print(json.dumps({"corridor": corridor(), "bandit": gaussian_bandit()}))


if __name__ == "__main__":
    main()
