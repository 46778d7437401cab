"""The vision network: a small hybrid Vision Transformer with a segmentation decoder (plain ops; exports to opset 17).

    x [B,1,S,S] ─ [x, x − local mean (7×7 average: a high-pass that makes small, low-contrast defects stand out)]
    ─ conv stem (2× stride-2 3×3 convs) ─ f4 [B,C4,S/4,S/4] ─ patch embedding (4×4 conv, stride 4 →
    one token per 16×16 image patch) + conditional position encoding (depthwise 3×3 conv on the token grid) ─ L pre-norm transformer blocks (explicit-matmul
    multi-head self-attention, GELU MLP) ─ tokens [B,(S/16)²,D]
    decoder: tokens → [B,D,S/16,S/16] → 1×1 conv → bilinear ×4 → concat f4 → 3×3 conv → 1×1 conv → class logits at
    S/4 → bilinear ×4 → masks [B,8,S,S] = sigmoid(logits)  (multi-label: each class its own sigmoid)
    image scores [B,8] = sigmoid(linear(mean token) + α_c · max over pixels of the class-c logits at S/4)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0, "dim must be a multiple of heads"
        self.heads = heads
        self.hd = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(self.hd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B,H,N,hd]
        att = torch.softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)), dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, n, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.att = Attention(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.n1(x))
        return x + self.mlp(self.n2(x))


def _conv_bn(cin: int, cout: int, k: int, s: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VisionNet(nn.Module):
    def __init__(
        self,
        size: int = 256,
        in_ch: int = 1,
        n_classes: int = 8,
        dim: int = 96,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        stem: tuple[int, int] = (16, 32),
        dec: int = 32,
    ):
        super().__init__()
        assert size % 16 == 0
        self.size = size
        self.grid = size // 16
        c2, c4 = stem
        self.local = nn.AvgPool2d(7, stride=1, padding=3, count_include_pad=False)
        self.stem = nn.Sequential(_conv_bn(2 * in_ch, c2, 3, 2), _conv_bn(c2, c4, 3, 2))
        self.patch = nn.Conv2d(c4, dim, 4, 4)
        # conditional position encoding (a depthwise 3×3 conv over the token grid, CPVT's PEG): works for any grid
        # size, so the network trains on crops and runs on the full frame
        self.pos = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.tok_proj = nn.Conv2d(dim, dec, 1)
        self.fuse = _conv_bn(dec + c4, dec, 3, 1)
        self.seg = nn.Conv2d(dec, n_classes, 1)
        self.cls = nn.Linear(dim, n_classes)
        self.alpha = nn.Parameter(torch.ones(n_classes))
        # rare positives: start the pixel logits low so the first steps do not drown in false positives
        nn.init.constant_(self.seg.bias, -4.0)
        nn.init.constant_(self.cls.bias, -1.0)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (pixel logits at S/4 [B,8,S/4,S/4], image logits [B,8])."""
        f4 = self.stem(torch.cat([x, (x - self.local(x)) * 4.0], 1))
        t = self.patch(f4)  # [B,D,g,g]
        b, d, g, _ = t.shape
        t = (t + self.pos(t)).flatten(2).transpose(1, 2)
        for blk in self.blocks:
            t = blk(t)
        t = self.norm(t)
        grid = t.transpose(1, 2).reshape(b, d, g, g)
        up = F.interpolate(self.tok_proj(grid), scale_factor=4.0, mode="bilinear", align_corners=False)
        seg = self.seg(self.fuse(torch.cat([up, f4], 1)))
        img = self.cls(t.mean(1)) + self.alpha * seg.amax(dim=(2, 3))
        return seg, img

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (masks [B,8,S,S] per-pixel class probabilities, scores [B,8] per-image class probabilities)."""
        seg, img = self.forward_logits(x)
        masks = torch.sigmoid(F.interpolate(seg, scale_factor=4.0, mode="bilinear", align_corners=False))
        return masks, torch.sigmoid(img)
