# SPDX-License-Identifier: MIT
"""A small decoder-only transformer whose KV cache is a kvswap.KVPool.

Random weights from a fixed seed, pre-norm blocks (LayerNorm, multi-head
causal attention, GELU MLP), learned positions. The KV cache is paged
the way inference servers page it: layer l's K and V for the tokens of
block ``table[i]`` live in ``pool.layer(l)[table[i]]``, and attention
gathers them through the block table. So a prefix swapped out of the
pool, the pool's memory reused, and the prefix swapped back in to other
block ids is the same KV to the model, down to the bit.

``forward(tokens, start, table, before_layer)`` runs ``tokens`` at
positions ``start..`` against the cache of the first ``start`` tokens
(already in the pool through ``table``), writes their K/V to the pool
and returns the logits. ``before_layer(l)`` is called before layer l
reads the cache: the test waits there for layer l's swap-in group, so
layer l waits only for its own data.
"""
import math

import torch


class TinyTransformer:
    def __init__(self, vocab=256, dim=64, heads=4, layers=4, mlp=128,
                 max_tokens=512, seed=1234, dtype=torch.float32):
        g = torch.Generator().manual_seed(seed)

        def w(*shape, scale=None):
            s = scale if scale is not None else 1.0 / math.sqrt(shape[0])
            return (torch.randn(*shape, generator=g) * s).to(dtype)

        self.vocab, self.dim, self.heads, self.layers = vocab, dim, heads, layers
        self.head_dim = dim // heads
        self.dtype = dtype
        self.embed = w(vocab, dim, scale=0.5)
        self.pos = w(max_tokens, dim, scale=0.1)
        self.blocks = []
        for _ in range(layers):
            self.blocks.append({
                "ln1": (1 + w(dim, scale=0.05), w(dim, scale=0.05)),
                "qkv": w(dim, 3 * dim),
                "out": w(dim, dim),
                "ln2": (1 + w(dim, scale=0.05), w(dim, scale=0.05)),
                "up": w(dim, mlp),
                "down": w(mlp, dim),
            })
        self.ln_f = (1 + w(dim, scale=0.05), w(dim, scale=0.05))
        self.head = w(dim, vocab)

    def _ln(self, x, p):
        return torch.nn.functional.layer_norm(x, (self.dim,), p[0], p[1])

    def forward(self, pool, tokens, start, table, before_layer=None):
        """Logits [len(tokens), vocab] of ``tokens`` at positions start...

        K/V of positions [0, start) are read from the pool through
        ``table`` (block ids, block_tokens tokens each); those of the new
        tokens are written there first.
        """
        bt = pool.block_tokens
        n = len(tokens)
        end = start + n
        if len(table) * bt < end:
            raise ValueError("table of %d blocks for %d tokens" % (len(table),
                                                                   end))
        t = torch.tensor(tokens, dtype=torch.long)
        x = self.embed[t] + self.pos[start:end]
        h, d = self.heads, self.head_dim
        # Causal mask of the new tokens over all end positions.
        qpos = torch.arange(start, end).unsqueeze(1)
        kpos = torch.arange(end).unsqueeze(0)
        mask = kpos > qpos
        for l, p in enumerate(self.blocks):
            a = self._ln(x, p["ln1"])
            q, k, v = (a @ p["qkv"]).split(self.dim, dim=1)
            if before_layer is not None:
                before_layer(l)
            layer = pool.layer(l)         # [blocks, 2, bt, heads, head_dim]
            for i in range(n):
                pos = start + i
                blk = layer[table[pos // bt]]
                blk[0, pos % bt] = k[i].view(h, d)
                blk[1, pos % bt] = v[i].view(h, d)
            nb = (end + bt - 1) // bt
            kv = layer[torch.tensor(table[:nb])]  # [nb, 2, bt, h, d]
            K = kv[:, 0].reshape(nb * bt, h, d)[:end]
            V = kv[:, 1].reshape(nb * bt, h, d)[:end]
            qh = q.view(n, h, d).transpose(0, 1)          # [h, n, d]
            s = qh @ K.permute(1, 2, 0) / math.sqrt(d)    # [h, n, end]
            s = s.masked_fill(mask, float("-inf"))
            o = torch.softmax(s, dim=-1) @ V.transpose(0, 1)  # [h, n, d]
            x = x + o.transpose(0, 1).reshape(n, self.dim) @ p["out"]
            m = self._ln(x, p["ln2"])
            x = x + torch.nn.functional.gelu(m @ p["up"]) @ p["down"]
        return self._ln(x, self.ln_f) @ self.head
