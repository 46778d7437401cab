"""The sensor-graph network: GAT-style message passing over the plant's sensor graph in plain tensor ops.

Input ``nodes`` [B,N,F]: RAW per-node feature vectors (GraphFeatureExtractor's, node and feature order of the
manifest). The graph normalises them: z = clip((x − mean[n,f]) / std[n,f], ±CLIP) with train-normal statistics, NaN
(missing) → 0 = the normal mean. The graph structure
(edge_index, edge kinds) is baked in as constants: dense masked attention over N nodes, which exports to a handful
of MatMul/Softmax/Where ops (opset 17, no scatter, no custom ops).

Layer l (H heads, C channels per head):   z = W h;   e_hij = LeakyReLU(a_src_h·z_hj + a_dst_h·z_hi + b_h[kind(j→i)])
for every edge j→i (given edges, their reverses as their own kinds, and self-loops);  α = softmax_j(e) over the
neighbours of i;  h'_i = LayerNorm(h_i + ELU(concat_h Σ_j α_hij z_hj)).
Node inputs: [z, |z|, max_f |z|]. Heads: node anomaly score s_i = σ(MLP([h⁰_i, h_i]) + a·max_f |z_i| + b); attention pooling g = softmax_i(w·h_i) (also an output), graph score
σ(MLP(Σ_i g_i h_i)).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLIP = 8.0
NEG = -1e4


def dense_structure(edge_index: np.ndarray, edge_kind: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """→ (kind one-hot [K,N,N] float32 where [k,i,j] = 1 when j sends to i with kind k, K). Kinds: the dataset's
    edge kinds 0..k-1 forward, k..2k-1 reversed, 2k = self-loop. Nodes without an entry in row i only see themselves."""
    ei = np.asarray(edge_index, dtype=np.int64)
    ek = np.zeros(ei.shape[1], np.int64) if edge_kind is None else np.asarray(edge_kind, dtype=np.int64)
    k = int(ek.max()) + 1 if ek.size else 1
    K = 2 * k + 1
    onehot = np.zeros((K, n, n), np.float32)
    for (s, d), kind in zip(ei.T, ek):
        if s == d:
            continue
        onehot[kind, d, s] = 1.0  # s → d: d attends to s
        onehot[k + kind, s, d] = 1.0  # reverse direction, its own kind
    onehot[2 * k, np.arange(n), np.arange(n)] = 1.0
    return onehot, K


class GATLayer(nn.Module):
    def __init__(self, dim: int, heads: int, n_kinds: int):
        super().__init__()
        assert dim % heads == 0
        self.h, self.c = heads, dim // heads
        self.w = nn.Linear(dim, dim, bias=False)
        self.a_src = nn.Parameter(torch.randn(heads, self.c) * 0.1)
        self.a_dst = nn.Parameter(torch.randn(heads, self.c) * 0.1)
        self.kind_bias = nn.Parameter(torch.zeros(n_kinds, heads))
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, onehot: torch.Tensor, mask_add: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        z = self.w(h).reshape(b, n, self.h, self.c).transpose(1, 2)  # [B,H,N,C]
        src = (z * self.a_src.unsqueeze(1)).sum(-1)  # [B,H,N]  (as sender j)
        dst = (z * self.a_dst.unsqueeze(1)).sum(-1)  # [B,H,N]  (as receiver i)
        # kind bias [H,N,N] = Σ_k b[k,h] · onehot[k,i,j]
        kb = torch.einsum("kh,kij->hij", self.kind_bias, onehot)
        e = F.leaky_relu(dst.unsqueeze(-1) + src.unsqueeze(-2) + kb.unsqueeze(0), 0.2) + mask_add
        att = torch.softmax(e, dim=-1)  # [B,H,N(i),N(j)]
        out = torch.matmul(att, z).transpose(1, 2).reshape(b, n, d)
        return self.norm(h + F.elu(out))


class SensorGNN(nn.Module):
    def __init__(self, n_nodes: int, n_features: int, onehot: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 dim: int = 32, layers: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(np.asarray(mean, np.float32).reshape(n_nodes, n_features)))
        self.register_buffer("inv_std", torch.from_numpy(1.0 / np.asarray(std, np.float32).reshape(n_nodes, n_features)))
        self.register_buffer("onehot", torch.from_numpy(onehot.astype(np.float32)))
        adj = onehot.sum(0) > 0
        self.register_buffer("mask_add", torch.from_numpy(np.where(adj, 0.0, NEG).astype(np.float32)))
        k = onehot.shape[0]
        # inputs per node: the z-scored features, their magnitudes and the node's largest magnitude
        self.inp = nn.Linear(2 * n_features + 1, dim)
        # the node head also sees the largest |z| directly (a learned skip from the per-sensor z-score)
        self.z_skip = nn.Parameter(torch.tensor([0.5, -2.0]))
        self.node_emb = nn.Parameter(torch.zeros(n_nodes, dim))
        nn.init.normal_(self.node_emb, std=0.1)
        self.layers = nn.ModuleList([GATLayer(dim, heads, k) for _ in range(layers)])
        self.drop = nn.Dropout(dropout)
        # jumping-knowledge: the node head sees the node's own embedding next to the message-passing result, so
        # the node's own evidence is not washed out by its neighbours'
        self.node_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        self.gate = nn.Linear(dim, 1)
        self.graph_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward_logits(self, x: torch.Tensor):
        x = (x - self.mean) * self.inv_std
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x).clamp(-CLIP, CLIP)
        ax = x.abs()
        zmax = ax.amax(-1, keepdim=True)  # [B,N,1]
        h = F.relu(self.inp(torch.cat([x, ax, zmax], -1)) + self.node_emb)
        h0 = h
        for layer in self.layers:
            h = self.drop(layer(h, self.onehot, self.mask_add))
        node = (self.node_head(torch.cat([h0, h], -1)) + self.z_skip[0] * zmax + self.z_skip[1]).squeeze(-1)  # [B,N]
        g = torch.softmax(self.gate(h).squeeze(-1), dim=-1)  # [B,N]
        pooled = (g.unsqueeze(-1) * h).sum(1)
        graph = self.graph_head(pooled).squeeze(-1)  # [B]
        return node, graph, g

    def forward(self, x: torch.Tensor):
        """→ node_scores [B,N] (P(sensor fault)), graph_score [B] (P(process anomaly)), pool_weights [B,N]."""
        node, graph, g = self.forward_logits(x)
        return torch.sigmoid(node), torch.sigmoid(graph), g
