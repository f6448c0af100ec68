# SPDX-License-Identifier: MIT
"""kvswap as a native second tier (L2) of LMCache's multi-process server.

Shaped after the client that LMCache's ``NativeConnectorL2Adapter``
wraps (lmcache/v1/distributed/l2_adapters/native_connector_l2_adapter.py,
loaded by native_plugin_l2_adapter.py):

- ``event_fd()`` -> an fd LMCache polls for POLLIN, then it calls
- ``drain_completions()`` -> ``[(future_id, ok, error, result_bools)]``;
- ``submit_batch_set(keys, memoryviews)`` / ``submit_batch_get(keys,
  memoryviews)`` / ``submit_batch_exists(keys)`` /
  ``submit_batch_delete(keys)`` -> a future id, never blocking on I/O;
- ``close()``.

Keys are LMCache's key strings, stored as given (after ``key_prefix``).
A set stores one entry per key (IF_ABSENT: a key already stored counts
as stored); a get reads each key into its memoryview; exists reports
each key (leased for ``lease_ms`` when > 0); delete reports each key
deleted.

Where the bytes go: kvswapd reads and writes only kvswap regions. A
batch whose memoryviews all lie in a region of this client (``region()``
makes one) is zero-copy. LMCache's L1 arena is LMCache's own memory, so
its memoryviews are *staged*: copied into (set) or out of (get) a
staging region of ``staging_mb`` MiB, one memcpy per object. The
``stats()`` counters say how many bytes took each path; with
``staging_mb`` 0 a batch outside a region fails with a clear error
instead. A batch that finds the staging region full fails (ok False,
error says so); LMCache treats that as a miss, nothing is lost.

``event_fd()`` is an eventfd this client writes when completions are
ready. A thread of its own waits on the kvswapd socket and reads its
events (LMCache's demux thread only polls the eventfd).

Enable it in LMCache's MP server (``--l2-adapter`` JSON, or the YAML
``l2_adapters`` list)::

    {"type": "native_plugin",
     "module_path": "kvswap.integrations.lmcache",
     "class_name": "KvswapNativeClient",
     "adapter_params": {"socket": "/run/kvswap/kvswapd.sock",
                        "staging_mb": 512}}
"""
import ctypes
import errno as _errno
import logging
import os
import select
import threading

from .._lib import lib
from ..client import Client, Entry, SKIPPED
from ..errors import KvswapError
from . import region_at

log = logging.getLogger("kvswap.lmcache")


class _Arena:
    """First-fit allocator of aligned byte ranges in the staging region."""

    def __init__(self, size, align):
        self.align = align
        self.free = [(0, size)] if size else []

    def take(self, n):
        n = (n + self.align - 1) // self.align * self.align
        for i, (off, ln) in enumerate(self.free):
            if ln >= n:
                self.free[i] = (off + n, ln - n)
                if self.free[i][1] == 0:
                    del self.free[i]
                return off, n
        return None

    def give(self, off, n):
        self.free.append((off, n))
        self.free.sort()
        merged = []
        for o, ln in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + ln)
            else:
                merged.append((o, ln))
        self.free = merged


def _address(mv):
    """The address of a writable buffer, or None if read-only."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(mv))
    except TypeError:
        return None


class _Op:
    __slots__ = ("kind", "fut", "n", "views", "spans", "result")

    def __init__(self, kind, n):
        self.kind = kind
        self.n = n
        self.fut = None
        self.views = None
        self.spans = None           # staging (offset, length) per key
        self.result = None          # (ok, error, bools) once known


class KvswapNativeClient:
    """LMCache's native L2 client over kvswapd (see the module docstring).

    socket: kvswapd's socket (None: $KVSWAP_SOCKET or the default).
    staging_mb: the staging region for memoryviews outside kvswap
    regions (0: none). lease_ms: exists leases the keys found. durable:
    sets end once on stable storage. key_prefix: prepended to every key.
    """

    def __init__(self, socket=None, staging_mb=256, lease_ms=0,
                 durable=False, key_prefix="", **_ignored):
        self.client = Client(socket)
        self.lease_ms = int(lease_ms)
        self.durable = bool(durable)
        self.prefix = key_prefix.encode() if isinstance(key_prefix, str) \
            else bytes(key_prefix)
        self._lock = threading.Lock()
        self._ops = {}
        self._ready = []
        self._next = 1
        self._counters = {"zero_copy_bytes": 0, "staged_bytes": 0,
                          "staging_full": 0}
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.staging = None
        a = self.client.alignment
        size = int(staging_mb) << 20
        if size:
            self.staging = self.client.region(size)
        self._arena = _Arena(size, a)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="kvswap-lmcache")
        self._thread.start()

    # --- what LMCache calls ---------------------------------------------

    def event_fd(self):
        return self._efd

    def submit_batch_set(self, keys, memoryviews):
        return self._submit(True, keys, memoryviews)

    def submit_batch_get(self, keys, memoryviews):
        return self._submit(False, keys, memoryviews)

    def submit_batch_exists(self, keys):
        ks = [self._k(k) for k in keys]
        op = _Op("exists", len(ks))
        try:
            _, present = self.client.lookup(ks, lease_ms=self.lease_ms,
                                            present=True)
            op.result = (True, "", present)
        except KvswapError as e:
            op.result = (False, str(e), None)
        return self._post(op)

    def submit_batch_delete(self, keys):
        ks = [self._k(k) for k in keys]
        op = _Op("delete", len(ks))
        n = len(ks)
        if n == 0:
            op.result = (True, "", [])
            return self._post(op)
        bs = (ctypes.c_void_p * n)()
        ls = (ctypes.c_size_t * n)()
        for i, k in enumerate(ks):
            bs[i] = ctypes.cast(ctypes.c_char_p(k), ctypes.c_void_p).value
            ls[i] = len(k)
        deleted = (ctypes.c_bool * n)()
        try:
            self.client._call("delete", lib.kvswap_delete_keys, bs, ls, n,
                              deleted)
            op.result = (True, "", [bool(x) for x in deleted])
        except KvswapError as e:
            op.result = (False, str(e), None)
        return self._post(op)

    def drain_completions(self):
        """Completions ready since the last call, as LMCache takes them."""
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            pass
        self._pump()
        with self._lock:
            ready, self._ready = self._ready, []
        out = []
        for fid, op in ready:
            ok, err, bools = op.result if op.result is not None else \
                self._finish(op)
            out.append((fid, ok, err, bools))
        return out

    def close(self):
        if self._thread is None:
            return
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._wake_r, self._wake_w, self._efd):
            os.close(fd)
        self.client.close()

    # --- more ------------------------------------------------------------

    def region(self, nbytes):
        """A kvswap region of this client: memoryviews in it are zero-copy."""
        return self.client.region(nbytes)

    def stats(self):
        """Bytes moved zero-copy and through staging; staging-full refusals."""
        with self._lock:
            return dict(self._counters)

    # --- inside ----------------------------------------------------------

    def _k(self, key):
        return self.prefix + (key.encode() if isinstance(key, str)
                              else bytes(key))

    def _post(self, op):
        with self._lock:
            fid = self._next
            self._next += 1
            if op.result is not None:
                self._ready.append((fid, op))
            else:
                self._ops[fid] = op
        if op.result is not None:
            os.eventfd_write(self._efd, 1)
        return fid

    def _submit(self, out, keys, memoryviews):
        ks = [self._k(k) for k in keys]
        views = [memoryview(m).cast("B") for m in memoryviews]
        op = _Op("set" if out else "get", len(ks))
        if len(ks) != len(views):
            op.result = (False, "%d keys for %d buffers" % (len(ks),
                                                            len(views)), None)
            return self._post(op)
        if not ks:
            op.result = (True, "", [])
            return self._post(op)
        a = self.client.alignment
        addrs = [_address(v) for v in views]
        reg = region_at(addrs[0], [self.client]) if addrs[0] else None
        direct = reg is not None and all(
            x is not None and x % a == 0 and reg.address <= x and
            x + len(v) <= reg.address + reg.nbytes
            for x, v in zip(addrs, views))
        total = sum(len(v) for v in views)
        if direct:
            ents = [Entry(k, [x - reg.address], len(v))
                    for k, x, v in zip(ks, addrs, views)]
            region = reg
            with self._lock:
                self._counters["zero_copy_bytes"] += total
        elif self.staging is None:
            op.result = (False, "kvswap: buffers outside kvswap regions and "
                         "no staging region (staging_mb 0)", None)
            return self._post(op)
        else:
            spans = []
            with self._lock:
                for v in views:
                    s = self._arena.take(len(v))
                    if s is None:
                        break
                    spans.append(s)
                if len(spans) < len(views):
                    for s in spans:
                        self._arena.give(*s)
                    self._counters["staging_full"] += 1
                    spans = None
                else:
                    self._counters["staged_bytes"] += total
            if spans is None:
                op.result = (False, "kvswap: staging region full (staging_mb "
                             "%d; batch of %d bytes)" % (
                                 self.staging.nbytes >> 20, total), None)
                return self._post(op)
            st = memoryview(self.staging)
            if out:
                for (off, _), v in zip(spans, views):
                    st[off:off + len(v)] = v
            op.spans = spans
            op.views = views
            ents = [Entry(k, [off], len(v))
                    for k, (off, _), v in zip(ks, spans, views)]
            region = self.staging
        try:
            if out:
                op.fut = self.client.swap_out(region, ents, if_absent=True,
                                              durable=self.durable)
            else:
                op.fut = self.client.swap_in(region, ents)
        except KvswapError as e:
            self._release(op)
            op.result = (False, str(e), None)
        fid = self._post(op)
        self._pump()
        return fid

    def _release(self, op):
        if op.spans:
            with self._lock:
                for s in op.spans:
                    self._arena.give(*s)
            op.spans = None

    def _finish(self, op):
        fut = op.fut
        st = fut.result(check=False)
        errs = []
        bools = []
        for i, s in enumerate(st):
            good = s == 0 or (op.kind == "set" and s == SKIPPED)
            bools.append(good)
            if not good and not errs:
                msg = (lib.kvswap_req_entry_error(fut._h(), i) or b"").decode(
                    errors="replace")
                errs.append("entry %d: %s%s" % (i, os.strerror(-s) if s < 0
                                                else str(s),
                                                ": " + msg if msg else ""))
        if op.kind == "get" and op.spans:
            stg = memoryview(self.staging)
            for good, (off, _), v in zip(bools, op.spans, op.views):
                if good:
                    v[:] = stg[off:off + len(v)]
        self._release(op)
        fut.close()
        op.views = None
        return (all(bools), errs[0] if errs else "", bools)

    def _pump(self):
        """Reads kvswapd's events; moves finished batches to ready."""
        moved = False
        with self._lock:
            if not self._ops:
                return
            try:
                self.client.process(0)
            except KvswapError as e:
                if e.errno != _errno.EAGAIN:
                    log.error("kvswap: reading kvswapd's events: %s", e)
            for fid in [f for f, op in self._ops.items() if op.fut.done()]:
                self._ready.append((fid, self._ops.pop(fid)))
                moved = True
        if moved:
            os.eventfd_write(self._efd, 1)

    def _watch(self):
        p = select.poll()
        p.register(self.client.fileno(), select.POLLIN)
        p.register(self._wake_r, select.POLLIN)
        sock = self.client.fileno()
        while not self._stop:
            # The timeout catches events that another call read first.
            for fd, ev in p.poll(100):
                if fd == sock and ev & (select.POLLHUP | select.POLLERR):
                    log.error("kvswap: the connection to kvswapd is gone")
                    p.unregister(sock)
            if self._stop:
                break
            self._pump()
