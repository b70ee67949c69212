"""Denoiser f_θ(x_t, τ, up(y), g(y), prior tokens) → x̂0 for residual-shift diffusion.

The three HR-size inputs are PixelUnshuffled by 4 and concatenated (3·3·16 = 144 channels at LR
size), so the whole UNet runs at LR resolution: the cost of a 4x model is that of an LR model.
Time enters through a sinusoidal embedding of the continuous τ ∈ [0, 1] (scale-shift GroupNorm in
every ResBlock); the quality prior enters through cross-attention at the coarsest level, next to
self-attention there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from qusr_cli.archs.contract import RESIDUAL_BASES, ArchDescriptor, Conditioning, add_residual_base
from qusr_cli.weights.rules import Int, ListOf, OneOf

TIME_SCALE = 1000.0  # τ ∈ [0,1] is stretched so the sinusoid frequencies match the usual 0..1000 range


def timestep_embedding(tau: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding: [cos(s·ω_k), sin(s·ω_k)], s = 1000·τ, ω_k = max_period^(−k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=tau.device, dtype=torch.float32) / half)
    args = (tau.float() * TIME_SCALE)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(channels: int) -> int:
    return min(8, channels)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice; the time embedding scales and shifts the second norm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Multi-head attention of image positions to a key/value sequence (itself, or prior tokens)."""

    def __init__(self, channels: int, context_dim: int | None, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        kv_dim = context_dim or channels
        self.to_q = nn.Linear(channels, channels)
        self.to_kv = nn.Linear(kv_dim, 2 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        q = self.to_q(tokens)
        k, v = self.to_kv(tokens if context is None else context).chunk(2, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, c // self.heads).transpose(1, 2)

        mask = None if context_mask is None else context_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
        out = self.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class DenoiserUNet(nn.Module):
    arch_name = "unet"
    config_bounds = {"base_width": Int(4, 512), "channel_mult": ListOf(Int(1, 16), 1, 6),
                     "num_res_blocks": Int(1, 8), "attention_heads": Int(1, 64), "context_dim": Int(1, 4096),
                     "scale": Int(1, 8), "residual_base": OneOf(RESIDUAL_BASES)}

    def __init__(self, base_width: int = 32, channel_mult: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 1,
                 attention_heads: int = 4, context_dim: int = 384, scale: int = 4,
                 residual_base: str = "aux"):
        super().__init__()
        if residual_base not in RESIDUAL_BASES:
            raise ValueError(f"residual_base must be aux, up or none, not {residual_base!r}")
        self.config = {"base_width": base_width, "channel_mult": list(channel_mult),
                       "num_res_blocks": num_res_blocks, "attention_heads": attention_heads,
                       "context_dim": context_dim, "scale": scale, "residual_base": residual_base}
        self.scale = scale
        self.residual_base = residual_base
        self.context_dim = context_dim
        emb_dim = 4 * base_width
        self.time_mlp = nn.Sequential(nn.Linear(base_width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # Always-present learned token: the "no prior" case attends to it alone, and with a prior it
        # gives cross-attention somewhere to look when no text token is relevant.
        self.null_token = nn.Parameter(torch.randn(1, 1, context_dim) * 0.02)
        self.unshuffle = nn.PixelUnshuffle(scale)
        self.conv_in = nn.Conv2d(3 * 3 * scale * scale, base_width, 3, padding=1)

        widths = [base_width * m for m in channel_mult]
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_widths = [base_width]
        ch = base_width
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, width, emb_dim))
                ch = width
                skip_widths.append(ch)
            self.down_blocks.append(blocks)
            if level < len(widths) - 1:
                self.downsamplers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)
        self.mid_block1 = ResBlock(ch, ch, emb_dim)
        self.mid_self_attn = Attention(ch, None, attention_heads)
        self.mid_cross_attn = Attention(ch, context_dim, attention_heads)
        self.mid_block2 = ResBlock(ch, ch, emb_dim)

        self.up_blocks = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skip_widths.pop(), width, emb_dim))
                ch = width
            self.up_blocks.append(blocks)
            if level > 0:
                self.upsamplers.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, 3 * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def descriptor(self) -> ArchDescriptor:
        """LR sides must be multiples of 2^(levels − 1), one halving per level below the first."""
        # one denoiser pass, base width 32, fp32 on the CPU (VmHWM growth: 4.1 KB per LR pixel at 128²,
        # 2.9 KB at 256², 2.2 KB at 512²; SDPA attention does not grow quadratically there)
        return ArchDescriptor(scale=self.scale, size_multiple=2 ** (len(self.config["channel_mult"]) - 1),
                              context_dim=self.context_dim, bytes_per_lr_pixel=160 * self.config["base_width"])

    def prior_context(self, batch: int, context: torch.Tensor | None,
                      context_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the learned null token to the prior tokens (or use it alone)."""
        null = self.null_token.expand(batch, 1, self.context_dim)
        valid_null = torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        if context is None:
            return null, valid_null
        context = context.to(null.dtype).expand(batch, -1, -1)
        if context_mask is None:
            context_mask = torch.ones(context.shape[:2], dtype=torch.bool, device=context.device)
        return torch.cat([null, context], 1), torch.cat([valid_null, context_mask.expand(batch, -1)], 1)

    def forward(self, x_t: torch.Tensor, tau: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        batch = x_t.shape[0]
        tau = tau.reshape(-1).expand(batch) if tau.numel() == 1 else tau.reshape(batch)
        emb = self.time_mlp(timestep_embedding(tau, self.config["base_width"]).to(x_t.dtype))
        tokens, token_mask = self.prior_context(batch, cond.context, cond.context_mask)

        h = self.conv_in(torch.cat([self.unshuffle(x_t), self.unshuffle(cond.up), self.unshuffle(cond.aux)], 1))
        skips = [h]
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
                skips.append(h)
        h = self.mid_block1(h, emb)
        h = self.mid_self_attn(h)
        h = self.mid_cross_attn(h, tokens, token_mask)
        h = self.mid_block2(h, emb)
        for level, blocks in enumerate(self.up_blocks):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], 1), emb)
            if level < len(self.upsamplers):
                h = self.upsamplers[level](F.interpolate(h, scale_factor=2, mode="nearest"))
        return add_residual_base(self.shuffle(self.conv_out(F.silu(self.norm_out(h)))), cond, self.residual_base)
