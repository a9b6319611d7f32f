"""Pixels → model input: the per-channel normalisation, written once for every batch stream."""
from __future__ import annotations

import torch


class Normalise:
    """(x − mean) / std per channel, for pixel values in 0..255 (uint8 or float batches of (B, C, H, W)).

    ``mean_std`` is (means, stds) in [0, 1] units, one value per channel, as datasets publish them.
    """

    def __init__(self, mean_std: tuple[tuple[float, ...], tuple[float, ...]], device: torch.device):
        mean, std = (torch.tensor(values, device=device).view(1, -1, 1, 1) * 255 for values in mean_std)
        self.mean, self.std = mean, std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() - self.mean) / self.std
