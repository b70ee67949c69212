"""Seeded Gaussian noise that depends only on (seed, draw, pixel position).

Tiles overlap and are processed in any order, so noise cannot come from one sequential generator:
the HR plane is cut into fixed blocks, each filled by its own CPU generator seeded from
(seed, draw, block row, block column). Any window can then be rebuilt exactly, the same noise lands
on the same pixel in every tile, and the same seed gives the same noise on every device.
"""

from __future__ import annotations

import hashlib

import torch

BLOCK = 128


def block_seed(seed: int, draw: int, block_row: int, block_col: int) -> int:
    """A 63-bit seed mixed from the four integers (blake2b, so neighbouring blocks are unrelated)."""
    digest = hashlib.blake2b(f"{seed}:{draw}:{block_row}:{block_col}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class NoiseField:
    def __init__(self, seed: int, channels: int = 3):
        self.seed = seed
        self.channels = channels

    def window(self, draw: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """Standard normal noise for HR rows [top, top+height) and columns [left, left+width): (1,C,h,w)."""
        out = torch.empty(1, self.channels, height, width)
        for row in range(top // BLOCK, (top + height - 1) // BLOCK + 1):
            for col in range(left // BLOCK, (left + width - 1) // BLOCK + 1):
                gen = torch.Generator().manual_seed(block_seed(self.seed, draw, row, col))
                block = torch.randn(self.channels, BLOCK, BLOCK, generator=gen)
                y0, x0 = max(top, row * BLOCK), max(left, col * BLOCK)
                y1, x1 = min(top + height, (row + 1) * BLOCK), min(left + width, (col + 1) * BLOCK)
                out[0, :, y0 - top:y1 - top, x0 - left:x1 - left] = \
                    block[:, y0 - row * BLOCK:y1 - row * BLOCK, x0 - col * BLOCK:x1 - col * BLOCK]
        return out
