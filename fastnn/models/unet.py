"""A small conv U-Net denoiser for 32x32 RGB diffusion, conditioned by FiLM on a vector and,
at the coarse levels, by attention over the prompt's tokens.

    net = UNet(channels=(32, 64, 96), cond_dim=128)
    eps = net(x_t, t, cond)     # x_t (N, 3, 32, 32), t int array (N,), cond Tensor (N, cond_dim)
    net = UNet(channels=(32, 64, 128), blocks=(1, 2), attn=(1, 2), ctx_dim=64)
    eps = net(x_t, t, cond, ctx, keep)   # ctx (N, L, ctx_dim) token states, keep (N, L) bool

The path: a 3x3 conv lifts the pixels to channels[0]; each level runs `blocks` residual blocks
then halves the image with a strided conv; the bottom runs two blocks; the way back up doubles
the image with a transposed conv and runs blocks on the concatenation with the skip from the
same level (the U's rungs, which carry the fine detail the bottom lost); a GroupNorm-GELU-conv
head returns the predicted noise.

Each residual block is GroupNorm -> GELU -> conv 3x3 -> GroupNorm, then FiLM, h * (1 + scale) +
shift, where (scale, shift) = Linear(cond): the condition (time embedding plus
the encoded prompt) scales and shifts every channel, which is how the prompt reaches every pixel
at every resolution for the price of one matrix product per block. (GELU in its tanh form runs
as a fused kernel; fastnn's SiLU is a numpy expression, 10x slower on these activations.)

FiLM gives every pixel the same nudge, one vector for the whole prompt. To draw *where* a fish's
tail goes, a position must be able to ask the prompt about itself: an AttentionBlock lets each
pixel of a coarse level (16x16, 8x8: 256 and 64 positions, cheap) attend over the other pixels
and the prompt's token states at once (one softmax over both, padding masked): self-attention
ties distant parts of one object together, cross-attention reads the object word per position.
"""
import math

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor import Tensor, cat, no_grad

__all__ = ["UNet", "FiLMResBlock", "AttentionBlock", "timestep_embedding"]


def timestep_embedding(t, dim):
    """Sinusoidal embedding of integer steps t (N,) -> (N, dim) float32, as in the
    Transformer/DDPM (the digits denoiser in diffusion.py uses it too)."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    args = np.asarray(t, np.float64)[:, None] * freqs[None]
    return np.concatenate([np.sin(args), np.cos(args)], axis=1).astype(np.float32)


def _groups(c):
    """GroupNorm groups: 8 channels a group where that divides, else one group per channel."""
    for g in (c // 8, 4, 2, 1):
        if g >= 1 and c % g == 0:
            return g
    return 1


class FiLMResBlock(nn.Module):
    """x -> skip(x) + conv(GELU(FiLM(GN(conv(GELU(GN(x)))), cond))), channels c_in -> c_out."""

    def __init__(self, c_in, c_out, cond_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.c_out = c_out
        with no_grad():   # start each block as the identity: a stable first step
            self.conv2.weight._data[...] = 0
            self.conv2.bias._data[...] = 0
            self.film.weight._data *= 0.1

    def forward(self, x, cond):
        h = self.conv1(F.gelu(self.norm1(x), approximate="tanh"))
        ss = self.film(cond).reshape(cond.shape[0], 2 * self.c_out, 1, 1)
        scale, shift = ss[:, :self.c_out], ss[:, self.c_out:]
        h = self.norm2(h) * (scale + 1.0) + shift
        h = self.conv2(F.gelu(h, approximate="tanh"))
        return (x if self.skip is None else self.skip(x)) + h


class AttentionBlock(nn.Module):
    """x + proj(attention of each pixel over [the pixels; the context tokens]), channels c.

    Queries from GroupNorm(x); keys and values from the same pixels (self-attention) and from
    ctx (N, L, ctx_dim) (cross-attention), in one softmax, with the context's padding masked.
    The output projection starts at zero, so the block starts as the identity."""

    def __init__(self, c, ctx_dim, heads=4):
        super().__init__()
        if c % heads:
            raise ValueError(f"AttentionBlock: channels {c} must be divisible by heads {heads}")
        self.c, self.heads = int(c), int(heads)
        self.norm = nn.GroupNorm(_groups(c), c)
        self.q = nn.Linear(c, c)
        self.kv = nn.Linear(c, 2 * c)
        self.kv_ctx = nn.Linear(ctx_dim, 2 * c)
        self.proj = nn.Linear(c, c)
        with no_grad():
            self.proj.weight._data[...] = 0
            self.proj.bias._data[...] = 0

    def forward(self, x, ctx, keep=None):
        n, c, hgt, wid = x.shape
        hw, heads, hd = hgt * wid, self.heads, c // self.heads
        z = self.norm(x).reshape(n, c, hw).permute(0, 2, 1)            # (N, HW, C)
        kv = cat([self.kv(z), self.kv_ctx(ctx)], dim=1)                  # (N, HW + L, 2C)
        s = kv.shape[1]
        q = self.q(z).reshape(n, hw, heads, hd).permute(0, 2, 1, 3)
        k, v = kv.reshape(n, s, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        if keep is None:
            keep = np.ones((n, ctx.shape[1]), bool)
        mask = np.concatenate([np.ones((n, hw), bool), np.asarray(keep, bool)], axis=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        out = self.proj(a.permute(0, 2, 1, 3).reshape(n, hw, c))
        return x + out.permute(0, 2, 1).reshape(n, c, hgt, wid)


class UNet(nn.Module):
    """eps_theta(x_t, t, cond): in_channels images, len(channels) resolutions.

    channels[i]: the width at resolution 1 / 2**i (the last one is the bottom); blocks[i]: the
    residual blocks at level i on the way down and on the way up (the bottom always has two).
    A level with 0 blocks is a thin stem: at full resolution the convs cost the most, so the
    default keeps 16 channels there and no blocks, and does the work at 16x16 and 8x8.
    attn: the levels (0 = full resolution, len(channels) - 1 = the bottom) where an
    AttentionBlock follows each residual block, reading ctx tokens of width ctx_dim."""

    def __init__(self, in_channels=3, channels=(16, 64, 128), blocks=(0, 1), cond_dim=128,
                 time_dim=64, attn=(), ctx_dim=64):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        blocks = tuple(int(b) for b in blocks)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"UNet: channels needs at least two positive widths, got {channels}")
        if len(blocks) != len(channels) - 1 or min(blocks) < 0:
            raise ValueError(f"UNet: blocks needs one count >= 0 per level above the bottom "
                             f"({len(channels) - 1}), got {blocks}")
        attn = tuple(sorted(set(int(a) for a in attn)))
        if attn and not 0 <= min(attn) <= max(attn) < len(channels):
            raise ValueError(f"UNet: attn levels must be in 0..{len(channels) - 1}, got {attn}")
        self.channels, self.blocks, self.time_dim = channels, blocks, int(time_dim)
        self.attn = attn
        # one attention block after each residual block of an attended level (none elsewhere:
        # no parameters, so checkpoints without attention keep their keys)
        att = lambda level, c, k: nn.ModuleList(  # noqa: E731
            [AttentionBlock(c, ctx_dim) for _ in range(k if level in attn else 0)])
        self.in_channels, self.cond_dim = int(in_channels), int(cond_dim)
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, cond_dim), nn.GELU("tanh"),
                                      nn.Linear(cond_dim, cond_dim))
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        for i, c in enumerate(channels[:-1]):
            self.down_blocks.append(nn.ModuleList([FiLMResBlock(c, c, cond_dim)
                                                   for _ in range(blocks[i])]))
            self.down_attn.append(att(i, c, blocks[i]))
            self.downs.append(nn.Conv2d(c, channels[i + 1], 3, stride=2, padding=1))
        bottom = channels[-1]
        self.mid = nn.ModuleList([FiLMResBlock(bottom, bottom, cond_dim),
                                  FiLMResBlock(bottom, bottom, cond_dim)])
        self.mid_attn = att(len(channels) - 1, bottom, 2)
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        for i in range(len(channels) - 2, -1, -1):
            c = channels[i]
            self.ups.append(nn.ConvTranspose2d(channels[i + 1], c, 4, stride=2, padding=1))
            # the first block mixes the upsampled path with the skip (2c channels in)
            self.up_blocks.append(nn.ModuleList([FiLMResBlock(2 * c if j == 0 else c, c,
                                                              cond_dim)
                                                 for j in range(blocks[i])]))
            self.up_attn.append(att(i, c, blocks[i]))
        # a level without blocks hands the concatenation (2c channels) to the head or next up
        c0 = channels[0] * (1 if blocks[0] else 2)
        self.out_norm = nn.GroupNorm(_groups(c0), c0)
        self.out = nn.Conv2d(c0, in_channels, 3, padding=1)
        with no_grad():   # predict zero noise at first
            self.out.weight._data[...] = 0
            self.out.bias._data[...] = 0
        for i in range(1, len(channels) - 1):
            if blocks[i] == 0:
                raise ValueError("UNet: only the top level may have 0 blocks")

    def forward(self, x, t, cond, ctx=None, keep=None):
        """x (N, C, H, W) Tensor (H, W divisible by 2 ** (levels - 1)); t (N,) ints; cond
        (N, cond_dim) Tensor (the text's vector; the time embedding is added here); ctx
        (N, L, ctx_dim) token states and keep (N, L) bool (real tokens), needed with attn."""
        if self.attn and ctx is None:
            raise ValueError("UNet: this network attends over the prompt's tokens; pass ctx")
        n, _, hgt, wid = x.shape
        k = 2 ** (len(self.channels) - 1)
        if hgt % k or wid % k:
            raise ValueError(f"UNet: image sides must be divisible by {k}, got {hgt}x{wid}")
        temb = Tensor(timestep_embedding(t, self.time_dim).astype(x._data.dtype), device=x.device)
        c = self.time_mlp(temb) + cond
        h = self.inp(x)
        skips = []
        def run(blocks, attns, h):
            for j, block in enumerate(blocks):
                h = block(h, c)
                if len(attns):
                    h = attns[j](h, ctx, keep)
            return h

        for level, attns, down in zip(self.down_blocks, self.down_attn, self.downs):
            h = run(level, attns, h)
            skips.append(h)
            h = down(h)
        h = run(self.mid, self.mid_attn, h)
        for up, level, attns in zip(self.ups, self.up_blocks, self.up_attn):
            h = run(level, attns, cat([up(h), skips.pop()], dim=1))
        return self.out(F.gelu(self.out_norm(h), approximate="tanh"))
