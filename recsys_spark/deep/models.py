"""The deep models, two families alike in shape.

PairModel scores (user, item) pairs (two-tower, NCF/NeuMF) and is trained on labelled pairs;
SequenceModel encodes a left-padded item sequence (GRU4Rec, SASRec) and is trained to predict
the next item at every position. Both give `score_all` (B x n_items+1 scores, column 0 the
padding id), which is all full-ranking evaluation and top-K scoring need. Item side features
(category, price level) and the user's favourite category are lookup tables inside the model,
so the model needs only ids at serving time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class SideFeatures:
    """Per-id lookups (index = id; row 0 is padding): item category and price level, user's top category."""
    item_category: torch.Tensor
    item_price_level: torch.Tensor
    user_category: torch.Tensor

    @property
    def n_categories(self) -> int:
        return int(max(self.item_category.max(), self.user_category.max())) + 1

    @property
    def n_price_levels(self) -> int:
        return int(self.item_price_level.max()) + 1


class PairModel(nn.Module):
    kind = "pair"

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:  # logits (B,)
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self(batch["user_idx"], batch["item_idx"]), batch["label"])


class TwoTower(PairModel):
    """User tower (id, favourite category) and item tower (id, category, price level), each an
    MLP to a shared space; the score is their dot product, so retrieval is one matrix product."""

    def __init__(self, n_users: int, n_items: int, side: SideFeatures, dim: int = 64):
        super().__init__()
        for name in ("item_category", "item_price_level", "user_category"):
            self.register_buffer(name, getattr(side, name).long())
        self.user_id = nn.Embedding(n_users + 1, dim)
        self.item_id = nn.Embedding(n_items + 1, dim)
        self.category = nn.Embedding(side.n_categories, dim // 4)
        self.price = nn.Embedding(side.n_price_levels, dim // 4)
        self.user_mlp = nn.Sequential(nn.Linear(dim + dim // 4, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.item_mlp = nn.Sequential(nn.Linear(dim + dim // 2, dim), nn.ReLU(), nn.Linear(dim, dim))
        for emb in (self.user_id, self.item_id):
            nn.init.normal_(emb.weight, std=0.05)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_mlp(torch.cat([self.user_id(users), self.category(self.user_category[users])], -1))

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            items = torch.arange(self.item_id.num_embeddings, device=self.item_id.weight.device)
        feats = [self.item_id(items), self.category(self.item_category[items]),
                 self.price(self.item_price_level[items])]
        return self.item_mlp(torch.cat(feats, -1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(users) @ self.item_vectors().T


class NeuMF(PairModel):
    """NCF's NeuMF: a generalised matrix factorisation branch and an MLP branch over separate
    embeddings, joined by one output layer (He et al., 2017)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 32, layers: tuple[int, ...] = (64, 32, 16)):
        super().__init__()
        self.n_items = n_items
        self.gmf_user, self.gmf_item = nn.Embedding(n_users + 1, dim), nn.Embedding(n_items + 1, dim)
        half = layers[0] // 2
        self.mlp_user, self.mlp_item = nn.Embedding(n_users + 1, half), nn.Embedding(n_items + 1, half)
        mlp: list[nn.Module] = []
        for a, b in zip(layers, layers[1:], strict=False):
            mlp += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*mlp)
        self.out = nn.Linear(dim + layers[-1], 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.05)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], -1))
        return self.out(torch.cat([gmf, mlp], -1)).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        n, b = self.n_items + 1, users.shape[0]  # shape, not len(): TorchScript tracing keeps it dynamic
        items = torch.arange(n, device=users.device).repeat(b)
        return self(users.repeat_interleave(n), items).view(b, n)


class SequenceModel(nn.Module):
    """Next-item models: `encode` maps (B, L) item ids to (B, L, dim) states; an item's score is
    the dot product of a state with the item's (shared, input) embedding."""
    kind = "sequence"

    def __init__(self, n_items: int, dim: int, loss: str = "ce", negatives: int = 256):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; losses are {', '.join(LOSSES)}")
        self.n_items, self.loss_kind, self.negatives = n_items, loss, negatives
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item.weight, std=0.05)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        return self.encode(seq)[:, -1] @ self.item.weight.T

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """ce: softmax over every item at every position (padding targets ignored); sampled: softmax
        over the target and `negatives` items drawn uniformly, shared by the batch, with the logQ
        correction (cost batch x positions x negatives, not x items: large catalogues); bce: the
        target against one uniformly sampled negative per position (SASRec's original loss)."""
        states, targets = self.encode(batch["inputs"]), batch["targets"]
        mask = targets > 0
        if self.loss_kind == "ce":
            logits = states[mask] @ self.item.weight.T
            logits[:, 0] = float("-inf")
            return F.cross_entropy(logits, targets[mask])
        if self.loss_kind == "sampled":
            states, targets = states[mask], targets[mask]
            neg = torch.randint(1, self.n_items + 1, (self.negatives,), generator=generator).to(targets.device)
            pos_logit = (states * self.item(targets)).sum(-1, keepdim=True)
            # each negative was drawn with probability negatives / n_items: log Q corrects its logit
            neg_logit = states @ self.item(neg).T + math.log(self.n_items / self.negatives)
            neg_logit = neg_logit.masked_fill(neg[None, :] == targets[:, None], float("-inf"))
            logits = torch.cat([pos_logit, neg_logit], 1)
            return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=targets.device))
        neg = torch.randint(1, self.n_items + 1, targets.shape, generator=generator).to(targets.device)
        pos_logit = (states * self.item(targets)).sum(-1)[mask]
        neg_logit = (states * self.item(neg)).sum(-1)[mask]
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))


class GRU4Rec(SequenceModel):
    def __init__(self, n_items: int, dim: int = 64, layers: int = 1, dropout: float = 0.1, loss: str = "ce",
                 negatives: int = 256):
        super().__init__(n_items, dim, loss, negatives)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=layers, batch_first=True)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        return self.gru(self.dropout(self.item(seq)))[0]


class SASRec(SequenceModel):
    """Causal self-attention over the sequence with learned positional embeddings (Kang & McAuley,
    2018); padding positions are masked as keys."""

    def __init__(self, n_items: int, max_len: int, dim: int = 64, blocks: int = 2, heads: int = 1,
                 dropout: float = 0.2, inner_size: int = 0, loss: str = "ce", negatives: int = 256):
        super().__init__(n_items, dim, loss, negatives)
        self.position = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=inner_size or dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        positions = torch.arange(length, device=seq.device)
        x = self.dropout(self.item(seq) * self.item.embedding_dim ** 0.5 + self.position(positions))
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), 1)
        pad = seq == 0
        pad = pad & ~pad.all(-1, keepdim=True)  # an all-padding row would attend to nothing (NaN)
        return self.norm(self.blocks(x, mask=causal, src_key_padding_mask=pad))


def build_model(name: str, n_users: int, n_items: int, side: SideFeatures | None, max_len: int, dim: int,
                loss: str, negatives: int = 256, hyper: dict | None = None) -> nn.Module:
    """hyper: per-model settings by model name (deep.sasrec, deep.gru4rec, deep.ncf in config)."""
    own = (hyper or {}).get(name, {})
    if name == "two_tower":
        return TwoTower(n_users, n_items, side, dim)
    if name == "ncf":
        return NeuMF(n_users, n_items, dim // 2, **({"layers": tuple(own["layers"])} if own else {}))
    if name == "gru4rec":
        return GRU4Rec(n_items, dim, loss=loss, negatives=negatives, **own)
    if name == "sasrec":
        return SASRec(n_items, max_len, dim, loss=loss, negatives=negatives, **own)
    raise ValueError(f"unknown model {name!r}; models are two_tower, ncf, gru4rec, sasrec")


MODELS = ("two_tower", "ncf", "gru4rec", "sasrec")
LOSSES = ("ce", "sampled", "bce")
