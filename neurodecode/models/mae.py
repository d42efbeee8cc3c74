"""Masked autoencoder over tokens (BrainMAE for fMRI ROIs, BaRISTA for iEEG regions).

Input: ``(n_trials, n_tokens, n_times)`` — a token is an ROI series (fMRI),
a region or channel (iEEG), or an EEG channel group. Each token's series is
cut into ``n_patches = n_times // patch_size`` temporal patches (the last
``n_times % patch_size`` samples are dropped). A patch's embedding is

    Linear(patch) + token_embedding[token] + position_embedding[patch]

with learnable token (region) and position embeddings. A pre-norm
transformer encodes the **visible** patches; attention can be biased by a
token graph (``token_graph``: an ``(n_tokens, n_tokens)`` matrix such as
connectivity or ``exp(-distance)``): ``graph_mode="bias"`` adds
``graph_scale * G[t, t']`` to the attention logits, ``"mask"`` only lets a
patch attend to patches of tokens with ``G[t, t'] != 0`` (its own token always).

Masking (``mask_mode``):

* ``"random"``: exactly ``round(mask_ratio * n_tokens * n_patches)`` patches
  per trial are masked;
* ``"region"``: exactly ``round(mask_ratio * n_tokens)`` whole tokens (all
  their patches) are masked — region-scale masking.

A light decoder reconstructs the masked patches from the visible latents plus
mask tokens; the loss is the MSE on masked patches only. ``latent_weight > 0``
adds a masked-latent objective: the decoder also predicts, at masked
positions, the encoder's own latents of the unmasked input (computed without
gradient), as in data2vec-style targets.

The encoder is a feature extractor: `TokenMAE.encode` returns the mean over
all patch latents (no masking; ``pool="token"``: per token) — input for a
linear probe — and `MAEClassifierModule` puts a linear head on it for full fine-tuning.

Examples
--------
>>> import torch
>>> from neurodecode.models.mae import TokenMAE
>>> m = TokenMAE(n_tokens=6, n_times=40, patch_size=10, embed_dim=16, depth=1, n_heads=2)
>>> x = torch.randn(3, 6, 40)
>>> m.training_loss({"x": x}).shape, m.encode(x).shape, m.encode(x, pool="token").shape
(torch.Size([]), torch.Size([3, 16]), torch.Size([3, 96]))
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import register_model

__all__ = ["TokenMAE", "MAEClassifierModule", "attention_bias_from_graph"]


class _Block(nn.Module):
    """Pre-norm transformer block whose attention takes an additive bias."""

    def __init__(self, dim, n_heads, mlp_ratio=2.0, dropout=0.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.dropout = dropout

    def forward(self, x, bias=None):
        n, L, D = x.shape
        h = self.norm1(x)
        q, k, v = self.qkv(h).reshape(n, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        mask = None if bias is None else bias[:, None].to(q.dtype)  # broadcast over heads
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(a.transpose(1, 2).reshape(n, L, D))
        return x + self.mlp(self.norm2(x))


def attention_bias_from_graph(graph, mode="bias", scale=1.0):
    """Token-level additive attention bias from a token graph.

    Parameters
    ----------
    graph : array-like of shape (n_tokens, n_tokens)
        Connectivity, adjacency or similarity (e.g. ``exp(-distance / s)``).
    mode : {"bias", "mask"}
        ``"bias"``: ``scale * graph``; ``"mask"``: 0 where ``graph != 0`` or on
        the diagonal, ``-inf`` elsewhere.

    Returns
    -------
    torch.Tensor of shape (n_tokens, n_tokens), float32
    """
    g = torch.as_tensor(np.asarray(graph, dtype=np.float32))
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"token_graph has shape {tuple(g.shape)}; expected (n_tokens, n_tokens)")
    if not torch.isfinite(g).all():
        raise ValueError("token_graph contains NaN or inf")
    if mode == "bias":
        return scale * g
    if mode == "mask":
        allowed = (g != 0) | torch.eye(len(g), dtype=torch.bool)
        return torch.where(allowed, 0.0, -math.inf)
    raise ValueError(f"graph_mode={mode!r}: expected 'bias' or 'mask'")


@register_model("mae")
class TokenMAE(nn.Module):
    """Masked autoencoder over ``(n_tokens, n_times)`` inputs; see the module docstring.

    Parameters
    ----------
    n_tokens, n_times : int
        Input shape per trial.
    patch_size : int
        Samples per temporal patch (``<= n_times``).
    embed_dim, depth, n_heads : int
        Encoder width, number of blocks, attention heads.
    decoder_dim, decoder_depth : int
        Decoder width and depth (``n_heads`` must divide ``decoder_dim`` too).
    mask_ratio : float in (0, 1)
    mask_mode : {"random", "region"}
    token_graph : list of lists, optional
        ``(n_tokens, n_tokens)`` token relations for region-aware attention.
    graph_mode : {"bias", "mask"}
    graph_scale : float
    latent_weight : float
        Weight of the masked-latent objective (0: off).
    dropout : float
    """

    def __init__(self, n_tokens, n_times, patch_size=16, embed_dim=64, depth=2, n_heads=4,
                 decoder_dim=32, decoder_depth=1, mask_ratio=0.5, mask_mode="random",
                 token_graph=None, graph_mode="bias", graph_scale=1.0, latent_weight=0.0,
                 dropout=0.0):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio={mask_ratio}: expected 0 < mask_ratio < 1")
        if mask_mode not in ("random", "region"):
            raise ValueError(f"mask_mode={mask_mode!r}: expected 'random' or 'region'")
        if not 1 <= patch_size <= n_times:
            raise ValueError(f"patch_size={patch_size}: expected 1 <= patch_size <= n_times={n_times}")
        self.config = dict(n_tokens=int(n_tokens), n_times=int(n_times), patch_size=int(patch_size),
                           embed_dim=int(embed_dim), depth=int(depth), n_heads=int(n_heads),
                           decoder_dim=int(decoder_dim), decoder_depth=int(decoder_depth),
                           mask_ratio=float(mask_ratio), mask_mode=mask_mode,
                           token_graph=None if token_graph is None else np.asarray(token_graph, float).tolist(),
                           graph_mode=graph_mode, graph_scale=float(graph_scale),
                           latent_weight=float(latent_weight), dropout=float(dropout))
        self.n_tokens, self.patch_size = int(n_tokens), int(patch_size)
        self.n_patches = int(n_times) // int(patch_size)
        self.mask_ratio, self.mask_mode = float(mask_ratio), mask_mode
        self.latent_weight = float(latent_weight)
        L = self.n_tokens * self.n_patches
        self.n_masked = (int(round(mask_ratio * L)) if mask_mode == "random"
                         else int(round(mask_ratio * self.n_tokens)) * self.n_patches)
        if not 0 < self.n_masked < L:
            raise ValueError(f"mask_ratio={mask_ratio} masks {self.n_masked} of {L} patches; "
                             "at least one must be masked and one visible")

        D, Dd = int(embed_dim), int(decoder_dim)
        self.patch_embed = nn.Linear(self.patch_size, D)
        self.token_embed = nn.Parameter(0.02 * torch.randn(self.n_tokens, D))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(self.n_patches, D))
        self.blocks = nn.ModuleList(_Block(D, n_heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(D)
        self.to_decoder = nn.Linear(D, Dd)
        self.mask_token = nn.Parameter(0.02 * torch.randn(Dd))
        self.dec_token_embed = nn.Parameter(0.02 * torch.randn(self.n_tokens, Dd))
        self.dec_pos_embed = nn.Parameter(0.02 * torch.randn(self.n_patches, Dd))
        self.dec_blocks = nn.ModuleList(_Block(Dd, n_heads, dropout=dropout) for _ in range(decoder_depth))
        self.dec_norm = nn.LayerNorm(Dd)
        self.predict = nn.Linear(Dd, self.patch_size)
        self.predict_latent = nn.Linear(Dd, D) if self.latent_weight > 0 else None

        # Token of each patch position (token-major order): used to expand the graph bias.
        self.register_buffer("patch_token", torch.arange(self.n_tokens).repeat_interleave(self.n_patches),
                             persistent=False)
        if token_graph is not None:
            tb = attention_bias_from_graph(token_graph, graph_mode, graph_scale)
            if tb.shape[0] != self.n_tokens:
                raise ValueError(f"token_graph is {tuple(tb.shape)} but n_tokens={self.n_tokens}")
            self.register_buffer("token_bias", tb, persistent=False)
        else:
            self.token_bias = None

    # ------------------------------------------------------------ pieces
    def patchify(self, x):
        """``(n, n_tokens, n_times)`` → ``(n, n_tokens * n_patches, patch_size)`` (token-major)."""
        if x.ndim != 3 or x.shape[1] != self.n_tokens:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (n, {self.n_tokens}, n_times)")
        if x.shape[2] < self.n_patches * self.patch_size:
            raise ValueError(f"x has {x.shape[2]} times; the model needs at least "
                             f"{self.n_patches * self.patch_size}")
        x = x[:, :, : self.n_patches * self.patch_size]
        return x.reshape(x.shape[0], self.n_tokens * self.n_patches, self.patch_size)

    def _embed(self, patches):
        pos = self.token_embed[:, None, :] + self.pos_embed[None, :, :]  # (T, P, D)
        return self.patch_embed(patches) + pos.reshape(-1, pos.shape[-1])

    def _bias(self, keep):
        """Additive attention bias for the kept positions ``keep`` (n, Lk), or None."""
        if self.token_bias is None:
            return None
        tok = self.patch_token[keep]  # (n, Lk)
        return self.token_bias[tok[:, :, None], tok[:, None, :]]

    def random_mask(self, n, device=None):
        """Boolean ``(n, L)`` mask (True = masked) with exactly ``n_masked`` per row."""
        L = self.n_tokens * self.n_patches
        if self.mask_mode == "random":
            order = torch.argsort(torch.rand(n, L, device=device), dim=1)
            mask = torch.zeros(n, L, dtype=torch.bool, device=device)
            mask.scatter_(1, order[:, : self.n_masked], True)
            return mask
        # whole tokens: draw tokens, then mask every patch of each drawn token
        k = self.n_masked // self.n_patches
        order = torch.argsort(torch.rand(n, self.n_tokens, device=device), dim=1)
        token_mask = torch.zeros(n, self.n_tokens, dtype=torch.bool, device=device)
        token_mask.scatter_(1, order[:, :k], True)
        return token_mask.repeat_interleave(self.n_patches, dim=1)

    def _encode_positions(self, tokens, keep):
        bias = self._bias(keep)
        for blk in self.blocks:
            tokens = blk(tokens, bias)
        return self.norm(tokens)

    # ------------------------------------------------------------ public
    def forward_features(self, x):
        """Latents of every patch, no masking: ``(n, n_tokens * n_patches, embed_dim)``."""
        emb = self._embed(self.patchify(x))
        keep = torch.arange(emb.shape[1], device=emb.device).expand(emb.shape[0], -1)
        return self._encode_positions(emb, keep)

    def encode(self, x, pool="mean"):
        """Pooled latents per trial: the feature extractor.

        ``pool="mean"``: mean over every patch, ``(n, embed_dim)``.
        ``pool="token"``: mean over each token's patches, concatenated in token
        order, ``(n, n_tokens * embed_dim)``. It keeps which region carries what
        (e.g. an ROI's connectivity profile), which the global mean averages away.
        """
        z = self.forward_features(x)
        if pool == "mean":
            return z.mean(dim=1)
        if pool == "token":
            # token-major layout: (n, n_tokens, n_patches, D)
            return z.reshape(z.shape[0], self.n_tokens, self.n_patches, -1).mean(dim=2).flatten(1)
        raise ValueError(f"pool={pool!r}: expected 'mean' or 'token'")

    def forward(self, x, mask=None):
        """Reconstruct patches. Returns ``(pred, target, mask)`` (all ``(n, L, ...)``)."""
        patches = self.patchify(x)
        n, L, _ = patches.shape
        if mask is None:
            mask = self.random_mask(n, patches.device)
        emb = self._embed(patches)
        # Every row has the same number of visible positions, so a gather works.
        keep = torch.argsort(mask.to(torch.int8), dim=1, stable=True)[:, : L - self.n_masked]
        visible = torch.gather(emb, 1, keep[:, :, None].expand(-1, -1, emb.shape[-1]))
        latent = self._encode_positions(visible, keep)

        dec_vis = self.to_decoder(latent)
        full = self.mask_token.to(dec_vis.dtype).expand(n, L, -1).clone()
        full.scatter_(1, keep[:, :, None].expand(-1, -1, full.shape[-1]), dec_vis)
        dpos = (self.dec_token_embed[:, None, :] + self.dec_pos_embed[None, :, :]).reshape(L, -1)
        h = full + dpos
        all_pos = torch.arange(L, device=h.device).expand(n, -1)
        bias = self._bias(all_pos)
        for blk in self.dec_blocks:
            h = blk(h, bias)
        h = self.dec_norm(h)
        self._last_decoder_hidden = h
        return self.predict(h), patches, mask

    def training_loss(self, batch):
        """MSE on masked patches (+ ``latent_weight`` × masked-latent MSE)."""
        x = batch["x"]
        pred, target, mask = self(x)
        m = mask.to(pred.dtype)[..., None]
        loss = (((pred - target) ** 2) * m).sum() / (m.sum() * target.shape[-1])
        if self.predict_latent is not None:
            with torch.no_grad():
                goal = self.forward_features(x)
            z = self.predict_latent(self._last_decoder_hidden)
            loss = loss + self.latent_weight * (((z - goal) ** 2) * m).sum() / (m.sum() * z.shape[-1])
        return loss


@register_model("mae-classifier")
class MAEClassifierModule(nn.Module):
    """A `TokenMAE` encoder with a linear head on the mean-pooled latent (fine-tuning).

    Parameters
    ----------
    mae : dict
        ``TokenMAE`` configuration.
    n_classes : int
    """

    def __init__(self, mae, n_classes):
        super().__init__()
        self.config = {"mae": dict(mae), "n_classes": int(n_classes)}
        self.mae = TokenMAE(**mae)
        self.head = nn.Linear(self.mae.config["embed_dim"], int(n_classes))

    def forward(self, x):
        """Class logits ``(n, n_classes)``."""
        return self.head(self.mae.encode(x))

    def training_loss(self, batch):
        return F.cross_entropy(self(batch["x"]), batch["y"].long())
