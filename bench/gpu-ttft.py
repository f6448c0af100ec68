#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Time to first token with a prefix's KV swapped in from kvswapd: layer-wise
overlap against load-then-compute, same run, alternating.

A request whose prefix (PREFIX tokens) is stored in kvswapd arrives with
SUFFIX new tokens. Its time to first token (TTFT) is: bring the prefix's
KV back (kvswapd -> a pinned host KVPool -> the device) and run the
model's LAYERS layers over the suffix, attending to prefix + suffix.

- serial ("load-then-compute"): the whole swap-in, then every layer's
  host-to-device copy, then the forward pass;
- overlap (kvswap.gpu.LayerwiseLoader): one swap-in with a completion
  group per layer; as each group lands its blocks are copied on a side
  stream (non_blocking, from the pinned region) and layer i waits on the
  GPU for its own copy's event only.

The layer is a Llama-3-8B-shaped block (DIM 4096, 32 query heads, 8 KV
heads of 128, MLP 14336, fp16/bf16), one set of weights shared by all
layers (the compute per layer is the model's; the memory is not). On a
machine without CUDA, --device cpu runs the same code paths in float32
with a small shape, to prove the plumbing (its figures are not GPU
figures). Also measured alone, in the same run: the swap-in + copies
without compute, and the compute with the KV already on the device.

    bench/gpu-ttft.py --socket SOCK [--device cuda|cpu] [--out FILE]

Writes text and a JSON line to --out (and stdout).
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, os.path.join(ROOT, "python"))

import torch  # noqa: E402

import kvswap  # noqa: E402
from kvswap import gpu  # noqa: E402


def parse():
    cuda = gpu.available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--socket", default=os.environ.get("KVSWAP_SOCKET"))
    p.add_argument("--device", default="cuda" if cuda else "cpu",
                   choices=["cuda", "cpu"])
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--prefix", type=int, default=None, help="prefix tokens")
    p.add_argument("--suffix", type=int, default=None, help="new tokens")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--q-heads", type=int, default=None)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--mlp", type=int, default=None)
    p.add_argument("--block-tokens", type=int, default=16)
    p.add_argument("--runs", type=int, default=5, help="runs of each mode")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    big = a.device == "cuda"
    defaults = {"layers": 32, "prefix": 8192, "suffix": 1024, "dim": 4096,
                "q_heads": 32, "mlp": 14336} if big else \
        {"layers": 8, "prefix": 1024, "suffix": 32, "dim": 256, "q_heads": 8,
         "mlp": 512}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.device == "cuda" and not cuda:
        p.error("--device cuda: torch sees no CUDA device")
    return a


class Layer:
    """One pre-norm decoder layer with GQA attention over a paged cache."""

    def __init__(self, a, dtype, device):
        g = torch.Generator().manual_seed(1)
        d, hd = a.dim, a.head_dim

        def w(i, o):
            return (torch.randn(i, o, generator=g) / math.sqrt(i)).to(
                dtype).to(device)
        self.a = a
        self.wq = w(d, a.q_heads * hd)
        self.wk = w(d, a.kv_heads * hd)
        self.wv = w(d, a.kv_heads * hd)
        self.wo = w(a.q_heads * hd, d)
        self.up = w(d, a.mlp)
        self.gate = w(d, a.mlp)
        self.down = w(a.mlp, d)

    def __call__(self, x, kv, nblocks):
        a = self.a
        n, hd = x.shape[0], a.head_dim
        h = torch.nn.functional.layer_norm(x, (a.dim,))
        q = (h @ self.wq).view(n, a.q_heads, hd).transpose(0, 1)
        k = (h @ self.wk).view(n, a.kv_heads, hd)
        v = (h @ self.wv).view(n, a.kv_heads, hd)
        pk = kv[:nblocks, 0].reshape(-1, a.kv_heads, hd)[:a.prefix]
        pv = kv[:nblocks, 1].reshape(-1, a.kv_heads, hd)[:a.prefix]
        K = torch.cat([pk, k]).transpose(0, 1)
        V = torch.cat([pv, v]).transpose(0, 1)
        rep = a.q_heads // a.kv_heads
        K = K.repeat_interleave(rep, 0)
        V = V.repeat_interleave(rep, 0)
        # Causal over the suffix, full over the prefix.
        mask = torch.ones(n, a.prefix + n, dtype=torch.bool, device=x.device)
        mask[:, a.prefix:] = torch.ones(n, n, dtype=torch.bool,
                                        device=x.device).tril()
        o = attention(q, K, V, mask)
        x = x + o.transpose(0, 1).reshape(n, -1) @ self.wo
        h = torch.nn.functional.layer_norm(x, (a.dim,))
        return x + (torch.nn.functional.silu(h @ self.gate) * (h @ self.up)) \
            @ self.down


def attention(q, k, v, mask):
    f = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if f is not None:                        # torch >= 2.0
        return f(q, k, v, attn_mask=mask)
    s = (q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1])
    return torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    a = parse()
    dev = a.device
    dtype = torch.float16 if dev == "cuda" else torch.float32
    client = kvswap.Client(a.socket)
    bt = a.block_tokens
    nblocks = (a.prefix + bt - 1) // bt
    pool = kvswap.KVPool(client, a.layers, nblocks, a.kv_heads, a.head_dim,
                         dtype=dtype, block_tokens=bt, layers_per_group=1)
    pinned = gpu.pin(pool.region) if dev == "cuda" else None
    kv_bytes = a.layers * nblocks * pool.block_bytes
    g = torch.Generator().manual_seed(2)
    for l in range(a.layers):
        t = pool.layer(l)
        t.copy_(torch.randn(t.shape, generator=g).to(dtype))
    keys = ["ttft-%d-%d-%d" % (a.prefix, a.layers, b) for b in range(nblocks)]
    blocks = list(range(nblocks))
    client.delete(keys)
    t0 = time.monotonic()
    for lo in range(0, nblocks, 64):
        pool.swap_out(keys[lo:lo + 64], blocks[lo:lo + 64]).result()
    store_s = time.monotonic() - t0
    devl = [torch.zeros(pool.layer(0).shape, dtype=dtype, device=dev)
            for _ in range(a.layers)]
    loader = gpu.LayerwiseLoader(pool, devl)
    layer = Layer(a, dtype, dev)
    x0 = torch.randn(a.suffix, a.dim, generator=g).to(dtype).to(dev)
    head = (torch.randn(a.dim, 4096, generator=g) / 64).to(dtype).to(dev)

    def forward(get_kv):
        x = x0
        for l in range(a.layers):
            x = layer(x, get_kv(l), nblocks)
        return torch.nn.functional.layer_norm(x[-1:], (a.dim,)) @ head

    def serial():
        loader.load_all(keys, blocks, blocks)
        return forward(lambda l: devl[l])

    def overlap():
        load = loader.load(keys, blocks, blocks)
        out = forward(load.wait_layer)
        load.result()
        return out

    def load_only():
        loader.load_all(keys, blocks, blocks)

    def compute_only():
        return forward(lambda l: devl[l])

    modes = {"serial": serial, "overlap": overlap, "load_only": load_only,
             "compute_only": compute_only}
    # Warm-up (allocator, kernels), and the check that both give the same.
    ref = serial()
    sync(dev)
    got = overlap()
    sync(dev)
    same = bool(torch.equal(ref, got))
    times = {m: [] for m in modes}
    for _ in range(a.runs):
        for m, f in modes.items():
            sync(dev)
            t = time.monotonic()
            f()
            sync(dev)
            times[m].append(time.monotonic() - t)
    med = {m: statistics.median(v) for m, v in times.items()}
    name = torch.cuda.get_device_name(0) if dev == "cuda" else \
        "CPU (%s, %d cores)" % (platform.processor() or platform.machine(),
                                os.cpu_count())
    lines = [
        "gpu-ttft: device %s (%s), torch %s, Python %s" % (
            dev, name, torch.__version__, platform.python_version()),
        "shape: %d layers, prefix %d tokens (%d blocks of %d), suffix %d, "
        "dim %d, %d/%d heads of %d, %s; KV %.1f MiB; store %.2f s" % (
            a.layers, a.prefix, nblocks, bt, a.suffix, a.dim, a.q_heads,
            a.kv_heads, a.head_dim, str(dtype).replace("torch.", ""),
            kv_bytes / 2**20, store_s),
        "same logits, overlap vs serial: %s" % same,
    ]
    for m in modes:
        lines.append("%-12s median %8.1f ms  runs %s" % (
            m, med[m] * 1e3, " ".join("%.1f" % (x * 1e3) for x in times[m])))
    ratio = med["serial"] / med["overlap"]
    lines.append("TTFT serial / overlap = %.2f (>1: overlap is faster); "
                 "bound max(load, compute) / (load + compute) = %.2f" % (
                     ratio, max(med["load_only"], med["compute_only"]) /
                     (med["load_only"] + med["compute_only"])))
    summary = {"device": dev, "device_name": name, "torch": torch.__version__,
               "python": platform.python_version(), "layers": a.layers,
               "prefix": a.prefix, "suffix": a.suffix, "kv_bytes": kv_bytes,
               "same_logits": same, "runs_ms": {m: [x * 1e3 for x in v]
                                                for m, v in times.items()},
               "median_ms": {m: v * 1e3 for m, v in med.items()},
               "serial_over_overlap": ratio, "argv": sys.argv}
    text = "\n".join(lines)
    print(text)
    print(json.dumps(summary))
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n" + json.dumps(summary) + "\n")
    loader = devl = None       # their views of the region go first
    if pinned is not None:
        pinned.close()
    pool.close()
    client.close()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
