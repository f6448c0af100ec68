# SPDX-License-Identifier: MIT
"""kvswap.gpu: pinning a Region for DMA and the layer-wise loader.

The loader's logic (a thread waiting group by group, layer i released
when its group has landed and been copied) runs on the CPU here with
device="cpu"; the CUDA parts (cudaHostRegister, non_blocking copies on a
stream, events) run only where torch sees a GPU and skip clearly
elsewhere.
"""
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (Debian: python3-torch)")

import kvswap  # noqa: E402
from kvswap import gpu  # noqa: E402

needs_cuda = pytest.mark.skipif(
    not gpu.available(), reason="no CUDA device here (torch.cuda.is_available()"
    " is False): the GPU path runs on a GPU machine (bench/gpu-carry.sh)")


def fill_and_store(client, pool, keys, blocks, seed):
    g = torch.Generator().manual_seed(seed)
    full = pool.tensor()
    full.copy_(torch.randn(full.shape, generator=g).to(full.dtype))
    want = full.clone()
    client.delete(keys)
    pool.swap_out(keys, blocks).result()
    full.zero_()
    return want


def run_loader(client, device):
    with kvswap.KVPool(client, layers=6, blocks=8, heads=2, head_dim=64,
                       dtype=torch.float16, block_tokens=16,
                       layers_per_group=2) as pool:
        keys = ["gpu-%s-%d" % (device, b) for b in range(3)]
        want = fill_and_store(client, pool, keys, [0, 1, 2], 3)
        shape = (5,) + tuple(pool.layer(0).shape[1:])
        dev = [torch.zeros(shape, dtype=torch.float16, device=device)
               for _ in range(pool.layers)]
        pinned = gpu.pin(pool.region) if device == "cuda" else None
        try:
            loader = gpu.LayerwiseLoader(pool, dev)
            load = loader.load(keys, [5, 6, 7], [4, 0, 2])
            for l in range(pool.layers):
                t = load.wait_layer(l)
                # This layer's group is issued; a later group may not be.
                assert load.ready[pool.group_of(l)].is_set()
                for src, dst in ((0, 4), (1, 0), (2, 2)):
                    assert torch.equal(t[dst].cpu(), want[l, src]), (l, src)
            assert load.result() == [0, 0, 0]
            assert torch.count_nonzero(dev[0][1].cpu()) == 0
            # The reference path: everything, then the copies.
            for d in dev:
                d.zero_()
            assert loader.load_all(keys, [5, 6, 7], [4, 0, 2]) == [0, 0, 0]
            for l in range(pool.layers):
                assert torch.equal(dev[l][0].cpu(), want[l, 1])
            del t, load, loader
        finally:
            if pinned is not None:
                pinned.close()


def test_layerwise_loader_cpu(client):
    run_loader(client, "cpu")


def test_layerwise_loader_reports_a_missing_key(client):
    with kvswap.KVPool(client, layers=2, blocks=2, heads=1, head_dim=64,
                       dtype=torch.float32) as pool:
        dev = [torch.zeros(pool.layer(l).shape) for l in range(2)]
        load = gpu.LayerwiseLoader(pool, dev).load(["gpu-missing"], [0], [1])
        with pytest.raises(kvswap.KvswapError):
            load.wait_layer(0)


def test_pin_without_cuda_is_a_clear_error(client):
    if gpu.available():
        pytest.skip("this machine has a GPU: see test_layerwise_loader_cuda")
    with client.region(1 << 16) as r:
        with pytest.raises(kvswap.KvswapError, match="no CUDA device"):
            gpu.pin(r)


@needs_cuda
def test_layerwise_loader_cuda(client):
    run_loader(client, "cuda")


@needs_cuda
def test_pin_and_unpin(client):
    with client.region(1 << 20) as r:
        with gpu.pin(r) as p:
            assert p.pinned
            src = torch.frombuffer(r, dtype=torch.uint8)
            src[:] = 7
            d = src.to("cuda", non_blocking=True)
            torch.cuda.synchronize()
            assert int(d.sum()) == 7 * (1 << 20)
            del src
        assert not p.pinned


def test_gpu_carry_cpu_mode(tmp_path):
    """bench/gpu-carry.sh prepare + run --cpu: the carried kvswapd (under
    its own C library and loader) and libkvswap (with LD_LIBRARY_PATH)
    serve bench/gpu-ttft.py, which checks that overlap and serial give
    the same logits. This machine has no GPU: the figures are CPU ones."""
    import os
    import subprocess
    import sys
    from conftest import BUILD, ROOT
    lib = os.path.join(BUILD, "libkvswap.so.0")
    syms = subprocess.run(["nm", "-D", lib], capture_output=True, text=True)
    if "__asan_init" in syms.stdout:
        pytest.skip("sanitizer build: the carry bundle is for the plain build")
    env = dict(os.environ, KVSWAP_CARRY_BUILD=BUILD,
               KVSWAP_PYTHON=sys.executable,
               KVSWAP_STORE_DIR=os.path.join(BUILD, "tests",
                                             "carry-%d" % os.getpid()),
               KVSWAP_STORE_SIZE="256M", OUT=str(tmp_path))
    env.pop("LD_PRELOAD", None)
    env.pop("KVSWAP_LIBRARY", None)
    script = os.path.join(ROOT, "bench", "gpu-carry.sh")
    p = subprocess.run([script, "prepare"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    carried = os.listdir(os.path.join(BUILD, "carry", "lib"))
    for name in ("liburing", "libprotobuf-c", "libsystemd", "libinih",
                 "libisal", "libkvswap"):
        assert any(f.startswith(name) for f in carried), (name, carried)
    p = subprocess.run([script, "run", "--cpu", "--layers", "4", "--prefix",
                        "256", "--suffix", "8", "--runs", "1"], env=env,
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    text = open(tmp_path / "gpu-ttft.txt").read()
    assert "same logits, overlap vs serial: True" in text, text
    print(text)
