"""Patch embedding and position embeddings for the token models."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from zoo.model_info import ModelConfigError


def check_patch_grid(img_size: int, patch_size: int) -> int:
    """Tokens per side; an error at build time when the patch does not tile the image."""
    if img_size % patch_size:
        raise ModelConfigError(
            f"patch size {patch_size} does not divide the {img_size}px input: "
            f"use an --img-size that is a multiple of {patch_size}")
    return img_size // patch_size


class PatchEmbed(nn.Module):
    """Cut the image into p×p patches and project each linearly: a conv with kernel = stride = p.

    Returns tokens (B, N, D) when ``flatten`` (the default) or the grid (B, D, H/p, W/p).
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int, bias: bool = True,
                 flatten: bool = True):
        super().__init__()
        self.grid = check_patch_grid(img_size, patch_size)
        self.num_patches = self.grid ** 2
        self.patch_size = patch_size
        self.flatten = flatten
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for side in x.shape[-2:]:
            check_patch_grid(side, self.patch_size)
        x = self.proj(x)
        return rearrange(x, "b d h w -> b (h w) d") if self.flatten else x


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: tuple[int, int], num_prefix_tokens: int = 0) -> torch.Tensor:
    """Bicubically resize a learned (1, prefix + H·W, D) table to another grid, keeping prefix tokens."""
    prefix, grid_tokens = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old_side = int(math.isqrt(grid_tokens.shape[1]))
    if (old_side, old_side) == tuple(new_grid):
        return pos_embed
    grid = rearrange(grid_tokens, "1 (h w) d -> 1 d h w", h=old_side)
    grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False).to(pos_embed.dtype)
    return torch.cat([prefix, rearrange(grid, "1 d h w -> 1 (h w) d")], dim=1)


def sincos_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoids of (possibly continuous) positions: (..., ) → (..., dim)."""
    if dim % 2:
        raise ValueError(f"sinusoidal embedding needs an even width, got {dim}")
    omega = temperature ** (-torch.arange(dim // 2, dtype=torch.float32, device=positions.device) / (dim // 2))
    angles = positions.float().unsqueeze(-1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def check_fixed_input_size(x: torch.Tensor, img_size: int, model_name: str) -> None:
    """Token-mixing MLPs have one weight per token: refuse any input but the size they were built for."""
    if tuple(x.shape[-2:]) != (img_size, img_size):
        raise ModelConfigError(
            f"{model_name} mixes tokens with weights built for {img_size}×{img_size} input, got "
            f"{x.shape[-2]}×{x.shape[-1]}: resize the images or build the model with img_size={x.shape[-1]}")
