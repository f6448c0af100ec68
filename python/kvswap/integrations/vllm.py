# SPDX-License-Identifier: MIT
"""kvswap as a vLLM KV offloading backend (the OffloadingConnector's tier).

Shaped after vllm/v1/kv_offload: the scheduler's ``OffloadingManager``
(abstract.py) and the worker's ``OffloadingHandler``
(worker/worker.py), made by an ``OffloadingSpec`` (spec.py).

Scheduler, ``KvswapOffloadingManager``, keys = block hashes:

- ``lookup(block_hashes)`` -> how many leading blocks kvswapd holds;
- ``prepare_load(block_hashes)`` -> a KvswapLoadStoreSpec; the blocks are
  protected from eviction by a kvswapd lease (a Lookup with
  ``lease_ms``) until ``complete_load(block_hashes)``, which ends it
  (renewed to 1 ms: a renewal replaces the lease's time) once no other
  prepared load holds the block;
- ``prepare_store(block_hashes)`` -> PrepareStoreOutput(blocks not yet
  stored, their spec, evicted=[] since kvswapd evicts on its own);
  ``complete_store(block_hashes, success)``: a block becomes visible in
  kvswapd when its swap-out ends, so there is nothing left to publish.

Worker, ``KvswapOffloadingHandler(kv_caches)``:

- ``transfer_async(job_id, (src, dst))``: GPU -> KVSWAP copies each
  block's pages (per layer: K and V, or one page) into a slot of a host
  staging region (a kvswap region, pinned for DMA on CUDA) and swaps
  them out, one entry per block hash with a segment per page; KVSWAP ->
  GPU swaps in with a completion group per layer and, as each layer's
  group lands, copies that layer's pages onto the GPU (a CUDA stream,
  non_blocking);
- ``get_finished()`` -> the transfers ended since the last call;
  ``wait(job_ids)`` blocks until those have.

One offloaded block may be ``block_size_factor`` GPU blocks (vLLM's
offloaded block size over its GPU block size); the pages of a block are
``page_size_bytes`` in all, each padded to 4096 in the slot.

Enable it::

    vllm serve MODEL --kv-transfer-config '{"kv_connector":
        "OffloadingConnector", "kv_role": "kv_both",
        "kv_connector_extra_config": {"spec_name": "KvswapOffloadingSpec",
            "spec_module_path": "kvswap.integrations.vllm",
            "kvswap_socket": "/run/kvswap/kvswapd.sock",
            "kvswap_slots": 256, "block_size": 64}}'

``KvswapOffloadingSpec`` is made a subclass of vLLM's OffloadingSpec on
first access (PEP 562), so importing this module never imports vLLM.
"""
import dataclasses
import threading
import time

from ..client import Entry, SKIPPED
from ..errors import KvswapError
from . import shared_client

MEDIUM = "KVSWAP"


class KvswapLoadStoreSpec:
    """Where offloaded blocks are in kvswapd: their keys (vLLM's
    LoadStoreSpec, medium "KVSWAP")."""

    def __init__(self, keys):
        self.keys = list(keys)

    @staticmethod
    def medium():
        return MEDIUM

    def __repr__(self):
        return "KvswapLoadStoreSpec(%d blocks)" % len(self.keys)


@dataclasses.dataclass
class PrepareStoreOutput:
    """vLLM's PrepareStoreOutput (used when vLLM is not installed)."""
    block_hashes_to_store: list
    store_spec: object
    block_hashes_evicted: list


@dataclasses.dataclass
class TransferResult:
    """vLLM's TransferResult (used when vLLM is not installed)."""
    job_id: int
    success: bool
    transfer_size: int = None
    transfer_time: float = None
    transfer_type: tuple = None


def _vllm(name, local):
    try:
        if name == "PrepareStoreOutput":
            from vllm.v1.kv_offload.abstract import PrepareStoreOutput as c
        else:
            from vllm.v1.kv_offload.worker.worker import TransferResult as c
        return c
    except ImportError:
        return local


def block_key(block_hash, prefix=b"vllm:"):
    """kvswap's key of a vLLM block hash (bytes, or an older int hash)."""
    h = getattr(block_hash, "hash_value", block_hash)
    if isinstance(h, int):
        h = h.to_bytes(16, "little", signed=h < 0)
    elif isinstance(h, str):
        h = h.encode()
    return prefix + bytes(h)


class KvswapOffloadingManager:
    """vLLM's OffloadingManager over kvswapd (scheduler side)."""

    def __init__(self, client=None, socket=None, lease_ms=30000,
                 key_prefix=b"vllm:"):
        self.client = client or shared_client(socket)
        self.lease_ms = int(lease_ms)
        self.prefix = key_prefix
        self.max_lookup = self.client.limits["max_lookup_keys"] or 1
        self._loading = {}          # key -> prepared loads holding it

    def _keys(self, block_hashes):
        return [block_key(h, self.prefix) for h in block_hashes]

    def _lookup(self, keys, lease_ms=0, present=False):
        hit, pres = 0, []
        for lo in range(0, len(keys), self.max_lookup):
            part = keys[lo:lo + self.max_lookup]
            n, p = self.client.lookup(part, lease_ms=lease_ms, present=True)
            pres += p
            if hit == lo:
                hit += n
        return (hit, pres) if present else hit

    def lookup(self, block_hashes):
        return self._lookup(self._keys(block_hashes))

    def prepare_load(self, block_hashes):
        keys = self._keys(block_hashes)
        self._lookup(keys, lease_ms=self.lease_ms)
        for k in keys:
            self._loading[k] = self._loading.get(k, 0) + 1
        return KvswapLoadStoreSpec(keys)

    def touch(self, block_hashes):
        """kvswapd refreshes an entry's LRU place when it is read; a
        lookup does not, so there is nothing to do here."""
        return

    def complete_load(self, block_hashes):
        ended = []
        for k in self._keys(block_hashes):
            n = self._loading.get(k, 0) - 1
            if n > 0:
                self._loading[k] = n
            else:
                self._loading.pop(k, None)
                ended.append(k)
        if ended:
            # A renewal replaces the lease's time: 1 ms ends it.
            self._lookup(ended, lease_ms=1)

    def prepare_store(self, block_hashes):
        hashes = list(block_hashes)
        _, present = self._lookup(self._keys(hashes), present=True)
        todo = [h for h, p in zip(hashes, present) if not p]
        cls = _vllm("PrepareStoreOutput", PrepareStoreOutput)
        return cls(block_hashes_to_store=todo,
                   store_spec=KvswapLoadStoreSpec(self._keys(todo)),
                   block_hashes_evicted=[])

    def complete_store(self, block_hashes, success=True):
        """Blocks are visible once their swap-out ended; a failed one
        never became visible."""
        return

    def take_events(self):
        return ()


def _pages(t, block):
    """The contiguous pages of GPU block ``block`` in layer tensor ``t``:
    K and V for a (2, num_blocks, ...) tensor, else the block itself."""
    if t.dim() >= 2 and t.shape[0] == 2:
        return [t[0, block], t[1, block]]
    return [t[block]]


class _Job:
    __slots__ = ("job_id", "store", "keys", "block_ids", "slots", "fut",
                 "state", "next_layer", "event", "t0", "nbytes", "ok")


class KvswapOffloadingHandler:
    """vLLM's OffloadingHandler over kvswapd (worker side).

    kv_caches: layer name -> the layer's KV tensor (GPU, or CPU in
    tests), or a list of them, in layer order. slots: offloaded blocks
    in flight at once (the host staging region holds that many).
    """

    def __init__(self, kv_caches, client=None, socket=None, slots=64,
                 key_prefix=b"vllm:", block_size_factor=1, pin=True):
        import torch
        self.torch = torch
        self.client = client or shared_client(socket)
        self.prefix = key_prefix
        self.layers = list(kv_caches.values()) if isinstance(kv_caches, dict) \
            else list(kv_caches)
        self.factor = int(block_size_factor)
        a = self.client.alignment
        # One slot: a block's pages, layer by layer, each padded to a.
        self.page_sizes = []
        for t in self.layers:
            for p in _pages(t, 0):
                self.page_sizes.append(p.numel() * p.element_size())
        self.pages_per_layer = len(_pages(self.layers[0], 0))
        self.page_size_bytes = sum(self.page_sizes) * self.factor
        self.padded = [(n + a - 1) // a * a for n in self.page_sizes]
        self.slot_bytes = sum(self.padded) * self.factor
        self.nslots = int(slots)
        self.region = self.client.region(self.nslots * self.slot_bytes)
        self.host = torch.frombuffer(self.region, dtype=torch.uint8)
        self.cuda = self.layers[0].is_cuda
        self.pinned = None
        if self.cuda and pin:
            from .. import gpu
            self.pinned = gpu.pin(self.region)
        self.stream = torch.cuda.Stream() if self.cuda else None
        self.free = list(range(self.nslots))
        self.jobs = {}
        self.finished = []
        self.lock = threading.RLock()

    # --- layout ----------------------------------------------------------

    def _spans(self, slot):
        """Per (sub-block, layer, page): (offset in region, size)."""
        out = []
        off = slot * self.slot_bytes
        for _ in range(self.factor):
            for n, pad in zip(self.page_sizes, self.padded):
                out.append((off, n))
                off += pad
        return out

    def _host_view(self, off, page):
        v = self.host[off:off + page.numel() * page.element_size()]
        return v.view(page.dtype).view(page.shape)

    def _gpu_pages(self, block_ids, i):
        """GPU pages of offloaded block i, in slot order."""
        out = []
        for j in range(self.factor):
            b = int(block_ids[i * self.factor + j])
            for t in self.layers:
                out += _pages(t, b)
        return out

    def _entries(self, job):
        ents = []
        npl = self.pages_per_layer
        nl = len(self.layers)
        for i, (k, s) in enumerate(zip(job.keys, job.slots)):
            spans = self._spans(s)
            groups = [(j % (nl * npl)) // npl for j in range(len(spans))]
            ents.append(Entry(k, [o for o, _ in spans], [n for _, n in spans],
                              groups=groups))
        return ents

    # --- OffloadingHandler -------------------------------------------------

    def transfer_async(self, job_id, spec):
        src, dst = spec
        store = dst.medium() == MEDIUM
        kspec, gspec = (dst, src) if store else (src, dst)
        keys = list(kspec.keys)
        block_ids = [int(b) for b in gspec.block_ids]
        if len(block_ids) != len(keys) * self.factor:
            raise ValueError("kvswap: %d GPU blocks for %d offloaded blocks "
                             "(factor %d)" % (len(block_ids), len(keys),
                                              self.factor))
        with self.lock:
            if len(keys) > len(self.free):
                return False
            job = _Job()
            job.job_id, job.store, job.keys = job_id, store, keys
            job.block_ids = block_ids
            job.slots = [self.free.pop() for _ in keys]
            job.fut = job.event = None
            job.next_layer = 0
            job.t0 = time.monotonic()
            job.nbytes = len(keys) * self.page_size_bytes
            job.ok = True
            self.jobs[job_id] = job
            if store:
                self._copy_out(job)
            else:
                self._submit(job)
            self._advance(job)
        return True

    def _copy_out(self, job):
        ctx = self.torch.cuda.stream(self.stream) if self.cuda else _nullctx()
        with ctx:
            for i, s in enumerate(job.slots):
                pages = self._gpu_pages(job.block_ids, i)
                for (off, _), p in zip(self._spans(s), pages):
                    self._host_view(off, p).copy_(p, non_blocking=self.cuda)
            if self.cuda:
                job.event = self.torch.cuda.Event()
                job.event.record(self.stream)
        job.state = "copying"

    def _submit(self, job):
        try:
            if job.store:
                job.fut = self.client.swap_out(self.region,
                                               self._entries(job),
                                               if_absent=True)
            else:
                job.fut = self.client.swap_in(self.region, self._entries(job))
            job.state = "io"
        except KvswapError:
            job.ok = False
            job.state = "done"

    def _copy_in_layer(self, job, layer):
        npl = self.pages_per_layer
        nl = len(self.layers)
        ctx = self.torch.cuda.stream(self.stream) if self.cuda else _nullctx()
        with ctx:
            for i, s in enumerate(job.slots):
                pages = self._gpu_pages(job.block_ids, i)
                spans = self._spans(s)
                for j in range(len(spans)):
                    if (j % (nl * npl)) // npl == layer:
                        off = spans[j][0]
                        pages[j].copy_(self._host_view(off, pages[j]),
                                       non_blocking=self.cuda)

    def _advance(self, job):
        """Moves a job on without blocking; True once it is over."""
        if job.state == "copying":
            if job.event is not None and not job.event.query():
                return False
            self._submit(job)
        if job.state == "io":
            if not job.store:
                # Each layer group that landed goes on to the GPU now.
                while job.next_layer < len(self.layers) and \
                        job.fut.group_done(job.next_layer):
                    self._copy_in_layer(job, job.next_layer)
                    job.next_layer += 1
            if not job.fut.done():
                return False
            st = job.fut.result(check=False)
            job.fut.close()
            job.ok = all(s == 0 or (job.store and s == SKIPPED) for s in st)
            if job.ok and not job.store:
                while job.next_layer < len(self.layers):
                    self._copy_in_layer(job, job.next_layer)
                    job.next_layer += 1
            if self.cuda and not job.store:
                job.event = self.torch.cuda.Event()
                job.event.record(self.stream)
            job.state = "draining"
        if job.state == "draining":
            if job.event is not None and not job.event.query():
                return False
            job.state = "done"
        if job.state == "done":
            self.free += job.slots
            job.slots = []
            del self.jobs[job.job_id]
            cls = _vllm("TransferResult", TransferResult)
            kind = ("GPU", MEDIUM) if job.store else (MEDIUM, "GPU")
            if dataclasses.is_dataclass(cls):
                r = cls(job_id=job.job_id, success=job.ok,
                        transfer_size=job.nbytes,
                        transfer_time=time.monotonic() - job.t0,
                        transfer_type=kind)
            else:
                r = (job.job_id, job.ok)
            self.finished.append(r)
            return True
        return False

    def get_finished(self):
        with self.lock:
            if self.jobs:
                self.client.process(0)
            for job in list(self.jobs.values()):
                self._advance(job)
            out, self.finished = self.finished, []
        return out

    def wait(self, job_ids):
        """Blocks until every job of ``job_ids`` has finished (its result
        stays for get_finished)."""
        want = set(job_ids)
        while True:
            with self.lock:
                for job in list(self.jobs.values()):
                    self._advance(job)
                if not want & set(self.jobs):
                    return
                pending = [j for j in self.jobs.values() if j.job_id in want]
            j = pending[0]
            try:
                if j.state == "io":
                    if not j.store and j.next_layer < len(self.layers):
                        j.fut.wait(j.next_layer)
                    else:
                        j.fut.wait()
                elif j.event is not None:
                    j.event.synchronize()
            except KvswapError:
                pass            # _advance() reads the outcome

    def shutdown(self):
        with self.lock:
            if self.jobs:
                self.wait(list(self.jobs))
            if self.pinned is not None:
                self.pinned.close()
                self.pinned = None
            del self.host
            self.region.close()


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class KvswapSpecMixin:
    """The parts of KvswapOffloadingSpec that do not need vLLM."""

    def _kvswap_config(self):
        extra = dict(getattr(self, "extra_config", None) or {})
        return {"socket": extra.get("kvswap_socket"),
                "slots": int(extra.get("kvswap_slots", 256)),
                "lease_ms": int(extra.get("kvswap_lease_ms", 30000))}

    def get_manager(self):
        if getattr(self, "_kvswap_manager", None) is None:
            c = self._kvswap_config()
            self._kvswap_manager = KvswapOffloadingManager(
                socket=c["socket"], lease_ms=c["lease_ms"])
        return self._kvswap_manager

    def get_handlers(self, kv_caches, attn_backends=None):
        from vllm.v1.kv_offload.mediums import GPULoadStoreSpec
        c = self._kvswap_config()
        factor = getattr(self, "offloaded_block_size", 1) // \
            max(1, getattr(self, "gpu_block_size", 1))
        h = KvswapOffloadingHandler(kv_caches, socket=c["socket"],
                                    slots=c["slots"],
                                    block_size_factor=max(1, factor))
        yield GPULoadStoreSpec, KvswapLoadStoreSpec, h
        yield KvswapLoadStoreSpec, GPULoadStoreSpec, h


_made = {}


def __getattr__(name):
    # KvswapOffloadingSpec: made a subclass of vLLM's OffloadingSpec when
    # vLLM's OffloadingSpecFactory loads it (PEP 562).
    if name != "KvswapOffloadingSpec":
        raise AttributeError(name)
    if name not in _made:
        from vllm.v1.kv_offload.spec import OffloadingSpec
        _made[name] = type(name, (KvswapSpecMixin, OffloadingSpec), {})
    return _made[name]
