# SPDX-License-Identifier: MIT
"""The SGLang HiCache backend driven through the calls SGLang's cache
controller makes, against the real kvswapd.

The host pool is SGLang's MHATokenToKVPoolHost in its page_first layout,
reduced to what the storage path touches: kv_buffer of shape
(2, size, layer_num, head_num, head_dim) from the HostTensorAllocator
that get_allocator_from_storage() returns, and get_page_buffer_meta()
giving each page's K and V pointers and sizes as SGLang's does.
"""
import hashlib
import types

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (Debian: python3-torch)")

import kvswap  # noqa: E402
import kvswap.integrations as integ  # noqa: E402
from kvswap.integrations import sglang as ks  # noqa: E402


class HostPool:
    """page_first MHA host pool, as SGLang lays it out."""

    def __init__(self, allocator_module, size=256, page_size=16, layer_num=4,
                 head_num=2, head_dim=32, dtype=torch.float16):
        self.layout = "page_first"
        self.size, self.page_size = size, page_size
        self.layer_num, self.head_num, self.head_dim = layer_num, head_num, \
            head_dim
        self.dtype = dtype
        self.allocator = allocator_module.get_allocator_from_storage("dynamic")
        self.kv_buffer = self.allocator.allocate(
            (2, size, layer_num, head_num, head_dim), dtype, "cpu")

    def get_page_buffer_meta(self, indices):
        assert len(indices) % self.page_size == 0
        item = self.dtype.itemsize if hasattr(self.dtype, "itemsize") else \
            torch.empty((), dtype=self.dtype).element_size()
        tok = self.layer_num * self.head_num * self.head_dim * item
        v_offset = self.size * tok
        base = self.kv_buffer.data_ptr()
        idx = indices.tolist()
        ptrs = []
        for i in range(0, len(idx), self.page_size):
            k = base + idx[i] * tok
            ptrs += [k, k + v_offset]
        return ptrs, [self.page_size * tok] * len(ptrs)

    def page(self, slot):
        p = self.page_size
        return self.kv_buffer[:, slot * p:(slot + 1) * p].clone()


def page_hashes(n, seed):
    h, out = b"", []
    for i in range(n):
        h = hashlib.sha256(h + bytes([seed, i])).hexdigest().encode()
        out.append(h.decode())
    return out


@pytest.fixture
def sglang_env(daemon):
    fake = types.ModuleType("fake_sglang_pool_host_common")
    fake.get_allocator_from_storage = lambda allocator_type: None
    alloc = ks.install_allocator(socket=daemon.socket, modules=[fake])
    config = types.SimpleNamespace(
        tp_rank=0, tp_size=1, pp_rank=0, pp_size=1, model_name="org/tiny",
        is_mla_model=False, is_page_first_layout=True,
        extra_config={"socket": daemon.socket, "interface_v1": 1})
    pool = HostPool(fake)
    yield fake, alloc, config, pool
    del pool
    alloc.close()
    c = integ._clients.pop(daemon.socket, None)
    if c is not None:
        c.close()


def test_sglang_backup_then_prefetch(sglang_env):
    fake, alloc, config, pool = sglang_env
    assert fake.get_allocator_from_storage("anything") is alloc
    assert isinstance(alloc, kvswap.HostTensorAllocator)

    # StorageBackendFactory._create_dynamic_backend: cls(config, kwargs);
    # then the controller registers the host pool.
    backend = ks.KvswapHiCacheStorage(config, {})
    backend.register_mem_pool_host(pool)
    assert backend.region is alloc.region_of(pool.kv_buffer)

    ps = pool.page_size
    g = torch.Generator().manual_seed(5)
    pool.kv_buffer.copy_(torch.randn(pool.kv_buffer.shape, generator=g)
                         .to(pool.dtype))
    keys = page_hashes(4, 1)
    src = torch.arange(0, 4 * ps)                       # pages 0..3
    want = [pool.page(s) for s in range(4)]

    # Backup thread: _page_set_zero_copy -> all(batch_set_v1(...)).
    assert backend.batch_set_v1(keys, src) == [True] * 4
    # A second backup of pages already stored counts as stored.
    assert backend.batch_set_v1(keys[:2], src[:2 * ps]) == [True, True]

    # Prefetch thread: _storage_hit_query -> batch_exists (prefix count).
    other = page_hashes(2, 9)
    assert backend.batch_exists(keys + other) == 4
    assert backend.batch_exists(other + keys) == 0
    assert backend.exists(keys[3]) and not backend.exists(other[0])

    # _page_get_zero_copy: batch_get_v1 into other host slots (pages 9..12).
    pool.kv_buffer.zero_()
    dst = torch.arange(9 * ps, 13 * ps)
    assert backend.batch_get_v1(keys, dst) == [True] * 4
    for i in range(4):
        assert torch.equal(pool.page(9 + i), want[i])
    assert torch.count_nonzero(pool.page(0)) == 0

    # A missing page fails alone; the controller stops at the first False.
    got = backend.batch_get_v1([keys[0], other[0], keys[2]],
                               torch.arange(0, 3 * ps))
    assert got == [True, False, True]

    # Slots one token (512 bytes) off a 4096-byte boundary are refused,
    # never half written.
    assert backend.batch_set_v1(["x"], torch.arange(1, 1 + ps)) == [False]

    # The copying calls say what to configure.
    with pytest.raises(NotImplementedError, match="interface_v1"):
        backend.get(keys[0])

    assert backend.get_stats()["entries"] >= 4
    backend.clear()
    assert backend.batch_exists(keys) == 0


def test_sglang_refuses_a_pool_outside_a_region(sglang_env, client):
    _, _, config, _ = sglang_env
    backend = ks.KvswapHiCacheStorage(config, {})
    plain = types.SimpleNamespace(kv_buffer=torch.zeros(4096))
    with pytest.raises(ValueError, match="install_allocator"):
        backend.register_mem_pool_host(plain)
    with pytest.raises(RuntimeError, match="register_mem_pool_host"):
        backend.batch_get_v1(["k"], torch.arange(16))


def test_sglang_subclass_is_made_on_demand():
    try:
        import sglang  # noqa: F401
    except ImportError:
        # No SGLang here: importing the adapter did not need it, and the
        # subclass says what is missing.
        with pytest.raises(ImportError):
            ks.KvswapStorage
        return
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage
    assert issubclass(ks.KvswapStorage, HiCacheStorage)
