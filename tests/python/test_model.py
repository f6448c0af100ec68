# SPDX-License-Identifier: MIT
"""End to end with a real model: a prefix's KV cache through kvswapd and back.

A small transformer (tinymodel.py: random weights from a fixed seed, 4
layers, real causal attention over a paged KV cache that is a
kvswap.KVPool) runs prefill on a prompt. The prompt's full blocks are
swapped out through kvswapd under chained prefix keys, and the pool's
memory is reused (overwritten with other data). A follow-up request that
shares the prompt's prefix looks the keys up (with a lease), swaps the
prefix back in to other block ids and computes *while* it lands: layer l
waits for completion group l only. Its logits must equal, bit for bit
(CPU, torch.equal), those of the same request in a run that never
swapped.
"""
import hashlib

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (Debian: python3-torch)")

import kvswap  # noqa: E402
from tinymodel import TinyTransformer  # noqa: E402

BT = 16                    # tokens per block


def prefix_keys(tokens, n_blocks, salt=b"tiny-1234"):
    """Chained block hashes, as vLLM and SGLang name prefix blocks."""
    keys, h = [], hashlib.sha256(salt).digest()
    for b in range(n_blocks):
        chunk = bytes(tokens[b * BT:(b + 1) * BT])
        h = hashlib.sha256(h + chunk).digest()
        keys.append(b"model-" + h.hex().encode())
    return keys


@pytest.fixture
def setup(client):
    model = TinyTransformer(layers=4, dim=64, heads=4, seed=1234)
    pool = kvswap.KVPool(client, layers=4, blocks=16, heads=4, head_dim=16,
                         dtype=torch.float32, block_tokens=BT,
                         layers_per_group=1)
    g = torch.Generator().manual_seed(99)
    prompt = torch.randint(0, 256, (56,), generator=g).tolist()
    follow = prompt + torch.randint(0, 256, (9,), generator=g).tolist()
    yield model, pool, prompt, follow
    pool.close()


def test_swapped_prefix_gives_identical_logits(client, setup):
    model, pool, prompt, follow = setup
    full = len(prompt) // BT                  # 3 full blocks: 48 tokens
    hit_tokens = full * BT
    tail_blocks = [7, 8]                      # the follow-up's own tokens

    # The run that never swaps: prefill, then the follow-up over the
    # cached first 48 tokens.
    pool.tensor().zero_()
    ref_prefill = model.forward(pool, prompt, 0, [0, 1, 2, 3])
    ref = model.forward(pool, follow[hit_tokens:], hit_tokens,
                        [0, 1, 2] + tail_blocks)

    # The cache is what the model computes without one (not bit for bit:
    # other matrix shapes), so the check below compares real KV.
    pool.tensor().zero_()
    recompute = model.forward(pool, follow, 0, [12, 13, 14, 15, 6])
    assert torch.allclose(recompute[hit_tokens:], ref, atol=1e-4), \
        (recompute[hit_tokens:] - ref).abs().max()

    # The swapping run: prefill, swap the full blocks out, reuse the pool.
    pool.tensor().zero_()
    prefill = model.forward(pool, prompt, 0, [0, 1, 2, 3])
    assert torch.equal(prefill, ref_prefill)
    keys = prefix_keys(prompt, full)
    client.delete(keys)                        # a rerun starts clean
    pool.swap_out(keys, [0, 1, 2]).result()
    g = torch.Generator().manual_seed(7)
    pool.tensor().copy_(torch.randn(pool.tensor().shape, generator=g))

    # Garbage in place of the prefix really changes the logits, so the
    # equality below can fail.
    wrong = model.forward(pool, follow[hit_tokens:], hit_tokens,
                          [9, 4, 11] + tail_blocks)
    assert not torch.equal(wrong, ref)
    pool.tensor().copy_(torch.randn(pool.tensor().shape, generator=g))

    # The follow-up: lookup with a lease, swap-in to other blocks, layer l
    # waiting for its own group while the later groups may still land.
    want = prefix_keys(follow, len(follow) // BT)
    hit = client.lookup(want, lease_ms=10000)
    assert hit == full
    fut = pool.swap_in(want[:hit], [9, 4, 11])
    seen = []

    def before_layer(l):
        fut.wait(pool.group_of(l))
        seen.append([fut.group_done(g) for g in range(pool.groups)])

    out = model.forward(pool, follow[hit_tokens:], hit_tokens,
                        [9, 4, 11] + tail_blocks, before_layer)
    assert fut.result() == [0] * hit
    assert len(seen) == model.layers
    for l, done in enumerate(seen):
        assert done[l], "layer %d ran before its group landed" % l

    same = torch.equal(out, ref)
    print("real-model check: %d layers, prefix %d tokens (%d blocks) swapped "
          "out and back in layer by layer; torch.equal(logits, no-swap "
          "logits) = %s over %s; max |logits - recompute| = %.2e; groups "
          "landed when layer 0 ran: %s" % (
              model.layers, hit_tokens, hit, same, tuple(out.shape),
              (recompute[hit_tokens:] - out).abs().max().item(), seen[0]))
    assert same
