# SPDX-License-Identifier: MIT
"""The vLLM offloading backend driven as vLLM's OffloadingConnector drives
it, against the real kvswapd.

Scheduler side (OffloadingConnectorScheduler): lookup of a request's
block hashes, prepare_store/complete_store around a store job,
prepare_load/complete_load around a load job. Worker side
(OffloadingConnectorWorker -> OffloadingWorker): transfer_async(job_id,
(src_spec, dst_spec)) and get_finished() polled every step (wait() at
shutdown). The "GPU" KV caches are CPU tensors of vLLM's FlashAttention
layout (2, num_blocks, block_size, num_kv_heads, head_size), one per
layer; GPUBlocks stands for vLLM's GPULoadStoreSpec(block_ids).
"""
import hashlib
import time

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (Debian: python3-torch)")

from kvswap.integrations import vllm as kv  # noqa: E402

LAYERS, BLOCKS, BS, HEADS, HD = 3, 32, 16, 2, 64   # a page: 4 KiB fp16


class GPUBlocks:
    def __init__(self, block_ids):
        self.block_ids = list(block_ids)

    @staticmethod
    def medium():
        return "GPU"


def hashes(n, seed):
    h, out = b"", []
    for i in range(n):
        h = hashlib.sha256(h + bytes([seed, i])).digest()
        out.append(h)
    return out


def run(handler, job_id, spec, timeout=20):
    """The worker's step loop: submit, then poll get_finished()."""
    assert handler.transfer_async(job_id, spec)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in handler.get_finished():
            assert r.job_id == job_id
            return r
        time.sleep(0.001)
    raise AssertionError("job %d never finished" % job_id)


@pytest.fixture
def vllm_env(client):
    g = torch.Generator().manual_seed(11)
    caches = {"layer.%d" % l: torch.randn((2, BLOCKS, BS, HEADS, HD),
                                          generator=g).half()
              for l in range(LAYERS)}
    mgr = kv.KvswapOffloadingManager(client=client, lease_ms=5000)
    h = kv.KvswapOffloadingHandler(caches, client=client, slots=8,
                                   block_size_factor=2)
    yield caches, mgr, h
    h.shutdown()


def test_vllm_store_then_load(vllm_env, client):
    caches, mgr, h = vllm_env
    assert h.page_size_bytes == 2 * LAYERS * 2 * BS * HEADS * HD * 2
    blk = hashes(4, 3)                      # 4 offloaded = 8 GPU blocks
    gpu_src = list(range(8))
    client.delete([kv.block_key(x) for x in blk])
    assert mgr.lookup(blk) == 0

    # Store: prepare_store -> transfer_async(GPU -> KVSWAP) -> complete_store.
    out = mgr.prepare_store(blk)
    assert list(out.block_hashes_to_store) == blk
    assert out.block_hashes_evicted == []
    r = run(h, 1, (GPUBlocks(gpu_src), out.store_spec))
    assert r.success and r.transfer_size == 4 * h.page_size_bytes
    assert r.transfer_type == ("GPU", "KVSWAP")
    mgr.complete_store(blk)
    assert mgr.lookup(blk + hashes(1, 9)) == 4
    assert mgr.prepare_store(blk[:2] + hashes(1, 8)).block_hashes_to_store \
        == hashes(1, 8)
    want = {n: t.clone() for n, t in caches.items()}

    # Load the first 3 blocks into other GPU blocks, layer by layer.
    dst = [20, 21, 10, 11, 30, 31]
    spec = mgr.prepare_load(blk[:3])
    assert spec.medium() == "KVSWAP" and len(spec.keys) == 3
    for t in caches.values():
        t[:, dst] = 0
    r = run(h, 2, (spec, GPUBlocks(dst)))
    assert r.success and r.transfer_type == ("KVSWAP", "GPU")
    mgr.complete_load(blk[:3])
    for name, t in caches.items():
        for s, d in zip(gpu_src, dst):
            assert torch.equal(t[:, d], want[name][:, s]), (name, s, d)

    # A block kvswapd does not hold fails the job, not the worker.
    spec = mgr.prepare_load(hashes(1, 77))
    r = run(h, 3, (spec, GPUBlocks([5, 6])))
    assert not r.success
    mgr.complete_load(hashes(1, 77))

    # More blocks than staging slots: not submitted (vLLM retries later).
    big = hashes(9, 5)
    assert not h.transfer_async(4, (GPUBlocks(range(18)),
                                    mgr.prepare_store(big).store_spec))

    # wait() at shutdown: jobs end, their results stay for get_finished.
    assert h.transfer_async(5, (GPUBlocks([0, 1]),
                                mgr.prepare_store(hashes(1, 6)).store_spec))
    h.wait({5})
    assert [x.job_id for x in h.get_finished()] == [5]


def test_vllm_prepare_load_protects_from_eviction():
    """prepare_load leases the blocks: a store that could make room only by
    evicting them fails; once complete_load ends the lease (the last
    load holding a block), the same store evicts and succeeds."""
    import kvswap
    from conftest import Daemon
    d = Daemon(store_size="24M", extra=["--tenant-max-leased=100%"]).start()
    try:
        with kvswap.Client(d.socket) as c:
            mgr = kv.KvswapOffloadingManager(client=c, lease_ms=30000)
            mib = 1 << 20
            r = c.region(2 * mib)
            n = c.stat()["capacity"] // mib
            blk = hashes(n + 8, 4)
            for x in blk:               # more than fit: the first evicted
                c.swap_out(r, [kvswap.Entry(kv.block_key(x), [0], mib)]) \
                    .result()
            held = [x for x in blk if mgr.lookup([x]) == 1]
            assert 0 < len(held) <= n
            mgr.prepare_load(held)
            mgr.prepare_load(held[:1])
            new = kvswap.Entry(b"vllm:new", [mib], mib)
            with pytest.raises(kvswap.BatchError) as e:
                c.swap_out(r, [new]).result()
            assert isinstance(e.value.errors[0], kvswap.NoSpace)
            mgr.complete_load(held)      # held[0] is still being loaded
            time.sleep(0.05)
            c.swap_out(r, [new]).result()
            assert mgr.lookup(held[:1]) == 1   # its lease kept it
            mgr.complete_load(held[:1])
            r.close()
    finally:
        st = d.stop()
        d.cleanup()
    assert st == 0


def test_vllm_spec_is_made_on_demand():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError):
            kv.KvswapOffloadingSpec
        return
    from vllm.v1.kv_offload.spec import OffloadingSpec
    assert issubclass(kv.KvswapOffloadingSpec, OffloadingSpec)
