"""Label-query heads: learned label queries cross-attend over the map's locations (or a clip's frames).

Liu, Zhang, Yang, Su, Zhu. "Query2Label: A Simple Transformer Way to Multi-Label Classification",
arXiv:2107.10834, 2021. Ridnik, Sharir, Ben-Cohen, Ben-Baruch, Noy. "ML-Decoder: Scalable and
Versatile Classification Head", WACV 2023. Both replace global pooling with a transformer decoder
whose queries stand for labels; it is CMA's idea (one attention map per label, docs/method.md)
with learned multi-head attention instead of a ReLU-cosine with the label embedding.

The map X (B, D, H, W) becomes N = H * W tokens m_n = ReLU(W_m x_n + b_m) of width w (ML-Decoder's
input projection; no positional encoding). Each of the K queries q_g then goes through ``layers``
decoder layers *without* self-attention between queries (ML-Decoder's choice: it lets the number
of queries grow without a K x K cost, and self-attention added nothing in its ablation):

    u_g     = LayerNorm(q_g + Dropout(MultiHead(q_g, M, M)))      cross-attention over locations
    q_g'    = LayerNorm(u_g + Dropout(W_2 ReLU(W_1 u_g)))          feed-forward
    logit_k = <w_{g,j}, q_g'> + b_k,   label k = g f + j           group fully-connected

With ``groups`` = 0 there is one query per label (K = C, f = 1: a per-label linear classifier, as
Query2Label); ``groups`` = K > 0 is ML-Decoder's group decoding for many labels: query g serves
f = ceil(C / K) consecutive labels, each with its own (w,) weight vector, so the cost grows with K,
not C (K is lowered to ceil(C / f) so that no query is idle).

Where the queries come from (``init``):
- "random" (default): q_g free parameters drawn N(0, 1) (Query2Label's learned query embeddings,
  ML-Decoder's learnable queries). The default by the rule of docs/benchmarks.md: on three
  fashion-scenes sets x 3 seeds, random queries beat graph-projected ones by 1.68 +- 0.32 mAP
  (paired, validation) and word-vector ones by 1.77 +- 0.55.
- "embeddings": q_g = W_q u_g + b_q, u_g the unit label embedding of ``--embeddings`` (the mean
  of its labels' unit embeddings for a group) kept frozen, W_q trained: the graph's embeddings
  from `mlgraph embed`, or word vectors (`mlgraph embed --method word`), which is ML-Decoder's
  zero-shot query. Labels the graph places close start with close queries, and stay tied by the
  shared W_q.

Sizes: ML-Decoder's, width 768, 8 heads, feed-forward 2048, dropout 0.1, 1 layer (Query2Label:
2048 wide, with self-attention and positional encodings). The smaller 256 / 1024 decoder tied it
over 9 paired runs (benchmarks/defaults.py), so the paper's sizes are the default. ``head.attention(x)`` gives each label's attention over
the locations (B, C, H, W), averaged over the heads of the last layer: what `mlgraph predict
--explain` draws. For video (``video-query``) the T frames are the tokens and padded frames are
masked out of the attention (mask (B, T), True for real frames; core/models/temporal.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlgraph_cli.core.models.common import Head, as_feature_map, check_channels, check_option, label_buffer, makes
from mlgraph_cli.core.models.temporal import as_frames

INITS = ("embeddings", "random")


class QueryDecoderLayer(nn.Module):
    """Cross-attention of the queries over the tokens, then a feed-forward block; post-norm, no
    self-attention. q (B, K, w), tokens (B, N, w), padding (B, N) True where not a token, or None."""

    def __init__(self, width: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(width, ffn), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn, width))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, tokens: torch.Tensor, padding: torch.Tensor | None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, K, w) queries out, and the attention (B, K, N) averaged over heads when asked."""
        out, weights = self.attn(q, tokens, tokens, key_padding_mask=padding, need_weights=need_weights)
        q = self.norm1(q + self.drop1(out))  # (B, K, w)
        return self.norm2(q + self.drop2(self.ffn(q))), weights


class QueryHead(Head):
    """Label queries over an image map. x (B, D, H, W) -> logits (B, C); options in the module docstring.

    embeddings: (C, d) label embeddings for ``init = "embeddings"`` (a frozen buffer; not read
    with ``init = "random"``). width / heads / ffn / layers / dropout: the decoder. groups: 0 for
    one query per label, else the number K of query groups (ML-Decoder's group decoding).
    """

    name = "query"
    needs_embeddings = False  # with the default init ("random"); see reads_embeddings

    def __init__(self, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None, *,
                 embedding_dim: int | None = None, init: str = "random", width: int = 768, heads: int = 8,
                 ffn: int = 2048, layers: int = 1, dropout: float = 0.1, groups: int = 0) -> None:
        super().__init__()
        check_option(init in INITS, self.name, "init", init, " or ".join(INITS))
        for key, value in (("heads", heads), ("ffn", ffn), ("layers", layers)):
            check_option(isinstance(value, int) and value >= 1, self.name, key, value, "a positive whole number")
        check_option(isinstance(width, int) and width >= 1 and width % max(int(heads), 1) == 0, self.name, "width",
                     width, f"a positive multiple of heads = {heads}")
        check_option(0.0 <= float(dropout) < 1.0, self.name, "dropout", dropout, "a probability in [0, 1)")
        check_option(isinstance(groups, int) and 0 <= groups <= num_labels, self.name, "groups", groups,
                     f"0 for one query per label, or a number of query groups up to the {num_labels} labels")
        self.in_channels, self.num_labels = int(in_channels), int(num_labels)
        self.needs_embeddings = init == "embeddings"  # this head's own answer (the class's is the default's)
        self.per_query = 1 if groups == 0 else math.ceil(num_labels / groups)  # f labels per query
        self.num_queries = math.ceil(num_labels / self.per_query)  # K, no idle query
        config: dict[str, Any] = {"in_channels": self.in_channels, "num_labels": self.num_labels}
        if init == "embeddings":
            e = label_buffer(embeddings, num_labels, embedding_dim, self.name)
            self.register_buffer("embeddings", e)  # (C, d), frozen
            self.query_proj = nn.Linear(e.shape[1], width)
            self.query = None
            config["embedding_dim"] = int(e.shape[1])
        else:
            self.embeddings, self.query_proj = None, None
            self.query = nn.Parameter(torch.randn(self.num_queries, width))  # (K, w)
        self.token_proj = nn.Linear(in_channels, width)  # tokens: ReLU(W_m x + b_m)
        self.layers = nn.ModuleList(QueryDecoderLayer(width, heads, ffn, float(dropout)) for _ in range(layers))
        bound = width ** -0.5  # nn.Linear's init, one (w, f) block per query
        self.weight = nn.Parameter(torch.empty(self.num_queries, width, self.per_query).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_labels).uniform_(-bound, bound))  # (C,)
        self._remember(**config, init=init, width=width, heads=heads, ffn=ffn, layers=layers,
                       dropout=float(dropout), groups=groups)

    @classmethod
    def reads_embeddings(cls, options: dict[str, Any]) -> bool:
        return options.get("init", "random") == "embeddings"

    def _tokens(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, tuple]:
        """Tokens (B, N, D) in the parameters' dtype, the padding mask (None: every token real) and
        the grid (H, W) the locations came from."""
        x = as_feature_map(x)
        check_channels(x, self.in_channels, self.name)
        tokens = x.flatten(2).transpose(1, 2)  # (B, D, H, W) -> (B, N, D)
        return tokens.to(self.weight.dtype), None, tuple(x.shape[-2:])

    def queries(self) -> torch.Tensor:
        """The K queries before the decoder, (K, w)."""
        if self.query is not None:
            return self.query
        e = F.normalize(self.embeddings.float(), dim=1)  # (C, d), unit rows
        if self.per_query > 1:  # a group's query projects the mean of its labels' unit embeddings
            slots = self.num_queries * self.per_query
            e = F.pad(e, (0, 0, 0, slots - self.num_labels))  # (K * f, d), missing labels zero
            counts = (self.num_labels - torch.arange(self.num_queries, device=e.device) * self.per_query)
            e = e.reshape(self.num_queries, self.per_query, -1).sum(1)  # (K * f, d) -> (K, d)
            e = e / counts.clamp(max=self.per_query).unsqueeze(1).to(e.dtype)
        return self.query_proj(e.to(self.query_proj.weight.dtype))  # (K, w)

    def _decode(self, x: torch.Tensor, mask: torch.Tensor | None, need_weights: bool = False):
        tokens, padding, grid = self._tokens(x, mask)
        memory = F.relu(self.token_proj(tokens))  # (B, N, D) -> (B, N, w)
        q = self.queries().unsqueeze(0).expand(memory.shape[0], -1, -1)  # (K, w) -> (B, K, w)
        weights = None
        for i, layer in enumerate(self.layers):
            q, weights = layer(q, memory, padding, need_weights=need_weights and i == len(self.layers) - 1)
        return q, weights, grid

    def _logits(self, q: torch.Tensor) -> torch.Tensor:
        per_group = torch.einsum("bkw,kwf->bkf", q, self.weight)  # (B, K, w) x (K, w, f) -> (B, K, f)
        return per_group.flatten(1)[:, : self.num_labels] + self.bias  # (B, K * f) -> (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self._decode(x, None)[0])

    def _label_maps(self, weights: torch.Tensor) -> torch.Tensor:
        """The queries' attention (B, K, N) as one map per label (B, C, N): a label gets its group's."""
        label_query = torch.arange(self.num_labels, device=weights.device) // self.per_query  # (C,)
        return weights.float().index_select(1, label_query)  # (B, K, N) -> (B, C, N)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Each label's attention over the locations, (B, C, H, W), summing to one (last layer,
        averaged over heads)."""
        _, weights, (h, w) = self._decode(x, None, need_weights=True)
        maps = self._label_maps(weights)  # (B, C, N)
        return maps.reshape(maps.shape[0], self.num_labels, h, w)  # (B, C, N) -> (B, C, H, W)


class TemporalQueryHead(QueryHead):
    """Label queries over a clip's frames: x (B, D, T) + mask (B, T) -> logits (B, C). Padded frames
    are left out of the attention (a clip without a real frame attends to its first one)."""

    name = "video-query"
    modality = "video"

    def _tokens(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        x, mask = as_frames(x, mask)  # (B, D, T), (B, T)
        check_channels(x, self.in_channels, self.name)
        padding = ~mask  # (B, T), True = not a frame
        padding[:, 0] &= mask.any(dim=1)  # keep one key per clip: an all-masked row would give NaN
        return x.transpose(1, 2).to(self.weight.dtype), padding, (x.shape[-1],)  # (B, D, T) -> (B, T, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._logits(self._decode(x, mask)[0])

    def attention(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """a_k(t), (B, C, T): sums to one over the real frames, zero at padded ones."""
        _, weights, _ = self._decode(x, mask, need_weights=True)
        return self._label_maps(weights)  # (B, C, T)


@makes(QueryHead)
def query(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
          adjacency: torch.Tensor | None = None, **options) -> QueryHead:
    """Label queries over the map (Query2Label / ML-Decoder); ``adjacency`` is not used."""
    check_option(isinstance(in_channels, int), "query", "in_channels", in_channels, "one channel count")
    return QueryHead(in_channels, num_labels, embeddings, **options)


@makes(TemporalQueryHead)
def video_query(*, in_channels: int, num_labels: int, embeddings: torch.Tensor | None = None,
                **options) -> TemporalQueryHead:
    """Label queries over a clip's frames, padded frames masked."""
    return TemporalQueryHead(in_channels, num_labels, embeddings, **options)
