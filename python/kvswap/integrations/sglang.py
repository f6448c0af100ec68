# SPDX-License-Identifier: MIT
"""kvswap as SGLang's HiCache storage (L3) backend, zero-copy.

Shaped after ``sglang.srt.mem_cache.hicache_storage.HiCacheStorage`` and
the cache controller that calls it:

- ``register_mem_pool_host(pool)`` once, when the backend is attached;
- prefetch: ``batch_exists(keys, extra_info)`` -> how many *leading* keys
  are stored, then ``batch_get_v1(keys, host_indices, extra_info)`` ->
  one bool per key (the controller counts the leading Trues);
- backup: ``batch_set_v1(keys, host_indices, extra_info)`` -> one bool
  per key (the controller takes ``all()``).

``host_indices`` are token slots of SGLang's host KV pool; the pool's
``get_page_buffer_meta(host_indices)`` gives each page's buffers (K and
V, or one per layer and K/V in the layer_first layout) as pointers and
sizes. kvswapd reads and writes those bytes in place, which needs the
pool to *be* a kvswap region: ``KvswapHostTensorAllocator`` (SGLang's
HostTensorAllocator hook: ``allocate(dims, dtype, device)``) allocates
it in one, and ``install_allocator()`` makes SGLang's
``get_allocator_from_storage`` hand it out. A pool outside a region is
refused at ``register_mem_pool_host`` with a message saying so; there is
no silent copy path.

``batch_exists`` leases the hit prefix (``lease_ms``, default 10 s) so
that eviction cannot take it between the existence check and the
``batch_get_v1`` that follows on this connection (which consumes the
lease). ``batch_set_v1`` stores with IF_ABSENT: pages already stored or
being written count as stored.

Enable it (SGLang >= 0.5 with the dynamic backend)::

    import kvswap.integrations.sglang as ks
    ks.install_allocator()          # before SGLang builds its host pool
    # python -m sglang.launch_server ... --enable-hierarchical-cache
    #   --hicache-mem-layout page_first
    #   --hicache-storage-backend dynamic
    #   --hicache-storage-backend-extra-config '{"backend_name": "kvswap",
    #       "module_path": "kvswap.integrations.sglang",
    #       "class_name": "KvswapStorage", "interface_v1": 1,
    #       "socket": "/run/kvswap/kvswapd.sock"}'

``interface_v1: 1`` is what makes SGLang's controller use the zero-copy
v1 calls for a dynamic backend. ``KvswapStorage`` is
``KvswapHiCacheStorage`` made a subclass of SGLang's HiCacheStorage (its
factory checks that), built on first access so that importing this
module never imports SGLang. The page size in bytes should be a
multiple of 4096 (kvswapd's alignment): ``page_first`` with, e.g., a
page of 64 tokens is.
"""
import logging

from ..client import Entry, SKIPPED
from ..pool import HostTensorAllocator
from . import region_at, shared_client

log = logging.getLogger("kvswap.sglang")

_SGLANG_ALLOCATOR_MODULES = (
    "sglang.srt.mem_cache.pool_host.common",
    "sglang.srt.mem_cache.pool_host.base",
    "sglang.srt.mem_cache.pool_host.mha",
    "sglang.srt.mem_cache.pool_host.mla",
    "sglang.srt.mem_cache.memory_pool_host",
)


class KvswapHostTensorAllocator(HostTensorAllocator):
    """SGLang's HostTensorAllocator whose tensors live in kvswap regions
    of the process's shared Client (kvswap.integrations.shared_client)."""

    def __init__(self, socket=None, hugepages=False):
        super().__init__(shared_client(socket), hugepages=hugepages)


def install_allocator(socket=None, hugepages=False, modules=None):
    """Makes SGLang allocate its host KV pool in kvswap regions.

    SGLang picks a host pool's allocator with
    ``get_allocator_from_storage(allocator_type)``; this wraps that
    function, in every loaded module that holds it, so that it returns a
    KvswapHostTensorAllocator (whatever the type: the pool must be a
    region for kvswapd to reach it). Returns the allocator. Call it
    before the host pool is built (before launching the scheduler in
    the same process). ``modules``: module objects to patch instead of
    SGLang's (tests).
    """
    import importlib
    import sys

    alloc = KvswapHostTensorAllocator(socket, hugepages)
    if modules is None:
        modules = []
        for name in _SGLANG_ALLOCATOR_MODULES:
            m = sys.modules.get(name)
            if m is None:
                try:
                    m = importlib.import_module(name)
                except ImportError:
                    continue
            modules.append(m)
    patched = 0
    for m in modules:
        if hasattr(m, "get_allocator_from_storage"):
            m.get_allocator_from_storage = lambda allocator_type=None: alloc
            patched += 1
    if not patched:
        raise ImportError("kvswap: no loaded SGLang module defines "
                          "get_allocator_from_storage (is SGLang installed?)")
    return alloc


class KvswapHiCacheStorage:
    """The HiCache storage backend (see the module's docstring).

    ``storage_config``: SGLang's HiCacheStorageConfig (tp_rank, tp_size,
    model_name, is_mla_model, extra_config...). Its ``extra_config`` may
    name ``socket``, ``lease_ms``, ``key_prefix`` and ``durable``.
    ``kwargs``: what SGLang's dynamic factory passes second. ``client``:
    a kvswap.Client to use instead of the shared one (tests).
    """

    def __init__(self, storage_config=None, kwargs=None, client=None):
        extra = dict(getattr(storage_config, "extra_config", None) or {})
        self.client = client or shared_client(extra.get("socket"))
        self.lease_ms = int(extra.get("lease_ms", 10000))
        self.durable = bool(extra.get("durable", False))
        # As SGLang's file backend: keys differ per model and TP rank,
        # except for MLA, whose KV every rank shares.
        suffix = ""
        if storage_config is not None:
            model = (getattr(storage_config, "model_name", None) or "")
            suffix = "_" + model.replace("/", "-")
            if not getattr(storage_config, "is_mla_model", False):
                suffix += "_%d_%d" % (storage_config.tp_rank,
                                      storage_config.tp_size)
        self.prefix = extra.get("key_prefix", "sglang:")
        self.suffix = suffix
        self.mem_pool_host = None
        self.region = None
        self.max_lookup = self.client.limits["max_lookup_keys"] or 1

    def _k(self, key):
        return ("%s%s%s" % (self.prefix, key, self.suffix)).encode()

    # --- HiCacheStorage -----------------------------------------------

    def register_mem_pool_host(self, mem_pool_host):
        """Finds the kvswap region that holds the host pool."""
        buf = getattr(mem_pool_host, "kv_buffer", None)
        if buf is None:
            buf = getattr(mem_pool_host, "k_buffer")
        if isinstance(buf, (list, tuple)):
            buf = buf[0]
        reg = region_at(buf.data_ptr(), [self.client])
        if reg is None:
            raise ValueError(
                "kvswap: SGLang's host KV pool (%#x) is not in a kvswap "
                "region of this backend's client; call "
                "kvswap.integrations.sglang.install_allocator() before "
                "SGLang builds its host pool" % buf.data_ptr())
        self.mem_pool_host = mem_pool_host
        self.region = reg

    def _entries(self, keys, host_indices):
        """One Entry per page (key), its segments the page's buffers; and
        the indexes of the pages that cannot be named (unaligned)."""
        if self.mem_pool_host is None:
            raise RuntimeError("kvswap: register_mem_pool_host() first")
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        if isinstance(sizes, int):
            sizes = [sizes] * len(ptrs)
        if not keys or len(ptrs) % len(keys):
            raise ValueError("kvswap: %d buffers for %d keys" % (len(ptrs),
                                                                 len(keys)))
        per = len(ptrs) // len(keys)
        a = self.client.alignment
        base, end = self.region.address, self.region.address + \
            self.region.nbytes
        ents, idx, bad = [], [], []
        for i, key in enumerate(keys):
            p = ptrs[i * per:(i + 1) * per]
            s = sizes[i * per:(i + 1) * per]
            offs = [x - base for x in p]
            if any(x < base or x + n > end for x, n in zip(p, s)):
                bad.append(i)
                log.error("kvswap: page %d of %r is outside the pool's "
                          "region", i, key)
                continue
            if any(o % a for o in offs):
                bad.append(i)
                log.error("kvswap: page %d of %r is not %d-aligned (make "
                          "the page's bytes a multiple of %d)", i, key, a, a)
                continue
            ents.append(Entry(self._k(key), offs, list(s),
                              groups=[0] * per))
            idx.append(i)
        return ents, idx, bad

    def batch_exists(self, keys, extra_info=None):
        """How many leading keys are stored; leases them for lease_ms."""
        keys = list(keys)
        n = 0
        for lo in range(0, len(keys), self.max_lookup):
            part = [self._k(k) for k in keys[lo:lo + self.max_lookup]]
            hit = self.client.lookup(part, lease_ms=self.lease_ms)
            n += hit
            if hit < len(part):
                break
        return n

    def exists(self, key):
        return self.client.lookup([self._k(key)]) == 1

    def _run(self, out, keys, host_indices):
        keys = list(keys)
        if not keys:
            return []
        ents, idx, _ = self._entries(keys, host_indices)
        ok = [False] * len(keys)
        if not ents:
            return ok
        if out:
            fut = self.client.swap_out(self.region, ents, if_absent=True,
                                       durable=self.durable)
        else:
            fut = self.client.swap_in(self.region, ents)
        try:
            st = fut.result(check=False)
        finally:
            fut.close()
        for i, s in zip(idx, st):
            ok[i] = s == 0 or (out and s == SKIPPED)
        return ok

    def batch_get_v1(self, keys, host_indices, extra_info=None):
        """Reads each key's page into the pool at host_indices; a bool per key."""
        return self._run(False, keys, host_indices)

    def batch_set_v1(self, keys, host_indices, extra_info=None):
        """Stores each page of the pool at host_indices under its key."""
        return self._run(True, keys, host_indices)

    # The copying (non-v1) calls: this backend is zero-copy only.
    def _copying(self, *args, **kwargs):
        raise NotImplementedError(
            "kvswap's SGLang backend is zero-copy only: set "
            '"interface_v1": 1 in --hicache-storage-backend-extra-config')

    get = batch_get = set = batch_set = _copying

    def clear(self):
        """Deletes every key of this backend (its prefix and suffix)."""
        p, s = self.prefix.encode(), self.suffix.encode()
        mine = [e["key"] for e in self.client.list()
                if e["key"].startswith(p) and e["key"].endswith(s)]
        for lo in range(0, len(mine), self.max_lookup):
            self.client.delete(mine[lo:lo + self.max_lookup])

    def get_stats(self):
        return self.client.stat()


_made = {}


def __getattr__(name):
    # KvswapStorage: the backend as a subclass of SGLang's HiCacheStorage,
    # made when SGLang's factory asks for it (PEP 562).
    if name != "KvswapStorage":
        raise AttributeError(name)
    if name not in _made:
        from sglang.srt.mem_cache.hicache_storage import HiCacheStorage
        _made[name] = type("KvswapStorage",
                           (KvswapHiCacheStorage, HiCacheStorage), {})
    return _made[name]
