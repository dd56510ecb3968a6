"""The transformer block of ``yolov5s-transformer``: self-attention over the pixels of a feature map.

Attribute names follow upstream so state dicts keep upstream's keys (``m.tr.0.ma.in_proj_weight``).
"""

from __future__ import annotations

import torch
from torch import nn

from yolospan.yolo.blocks import C3, Conv

__all__ = ["C3TR", "TransformerBlock", "TransformerLayer"]


class TransformerLayer(nn.Module):
    """Multi-head self-attention and a two-layer linear feed-forward, each with a residual connection.

    No layer norms, and the feed-forward has no activation between its layers (upstream's design).
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.q = nn.Linear(channels, channels, bias=False)
        self.k = nn.Linear(channels, channels, bias=False)
        self.v = nn.Linear(channels, channels, bias=False)
        self.ma = nn.MultiheadAttention(embed_dim=channels, num_heads=heads)
        self.fc1 = nn.Linear(channels, channels, bias=False)
        self.fc2 = nn.Linear(channels, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ma(self.q(x), self.k(x), self.v(x))[0] + x
        return self.fc2(self.fc1(x)) + x  # type: ignore[no-any-return]


class TransformerBlock(nn.Module):
    """Pixels as a sequence ``[h*w, batch, channels]`` plus a learned linear position embedding,
    through ``layers`` `TransformerLayer` s, then back to a map. A 1×1 `Conv` first when the channels change.
    """

    def __init__(self, in_ch: int, out_ch: int, heads: int, layers: int) -> None:
        super().__init__()
        self.conv = Conv(in_ch, out_ch) if in_ch != out_ch else None
        self.linear = nn.Linear(out_ch, out_ch)
        self.tr = nn.Sequential(*(TransformerLayer(out_ch, heads) for _ in range(layers)))
        self.c2 = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        batch, _, height, width = x.shape
        sequence = x.flatten(2).permute(2, 0, 1)
        out = self.tr(sequence + self.linear(sequence))
        return out.permute(1, 2, 0).reshape(batch, self.c2, height, width)  # type: ignore[no-any-return]


class C3TR(C3):
    """`C3` whose bottlenecks are replaced by one `TransformerBlock` of ``repeats`` layers and 4 heads."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        repeats: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__(in_ch, out_ch, repeats, shortcut, groups, expansion)
        hidden = int(out_ch * expansion)
        self.m = TransformerBlock(hidden, hidden, 4, repeats)  # type: ignore[assignment]
