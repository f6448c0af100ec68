# SPDX-License-Identifier: MIT
"""Client, Region, Entry and Future: libkvswap's connection, regions and batches."""
import array
import ctypes
import errno as _errno
import fcntl
import mmap
import os
import threading
import time
import weakref

from . import _lib
from ._lib import lib
from .errors import BatchError, error

SKIPPED = _lib.SKIPPED

_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000)


def _key(k):
    if isinstance(k, str):
        return k.encode()
    if isinstance(k, (bytes, bytearray, memoryview)):
        return bytes(k)
    raise TypeError("a key is bytes or str, not %s" % type(k).__name__)


def _ms(timeout):
    """Seconds (None: forever) to libkvswap's milliseconds (-1: forever)."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return int(timeout * 1000 + 0.999)


def _huge_page_size():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1]) * 1024
    return 0


def _keys_array(keys):
    """Keys as (kept objects, void* array, size_t array) for a C call."""
    bs = [_key(k) for k in keys]
    n = len(bs)
    ptrs = (ctypes.c_void_p * n)()
    lens = (ctypes.c_size_t * n)()
    for i, b in enumerate(bs):
        ptrs[i] = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value
        lens[i] = len(b)
    return bs, ptrs, lens


class Entry:
    """One entry of a batch: a key and where each of its segments is.

    ``offsets[i]`` is where segment i is in the region (a multiple of the
    daemon's alignment, 4096). ``lengths`` is one int for every segment or
    one per segment: swap-out, the bytes to store; swap-in, the stored
    lengths (the CRC32C check needs them). ``groups[i]`` is segment i's
    completion group (None: segment i is in group i). ``indexes[i]``
    (swap-in only) is the stored segment that lands at ``offsets[i]``
    (None: 0, 1, ...). ``metadata``: bytes stored with a swap-out.
    """

    __slots__ = ("key", "offsets", "lengths", "groups", "indexes", "metadata")

    def __init__(self, key, offsets, lengths, groups=None, indexes=None,
                 metadata=None):
        self.key = _key(key)
        self.offsets = offsets
        self.lengths = lengths
        self.groups = groups
        self.indexes = indexes
        self.metadata = metadata

    def __repr__(self):
        return "Entry(%r, %d segments)" % (self.key, len(self.offsets))


def _as_entry(e):
    if isinstance(e, Entry):
        return e
    return Entry(*e)


class _Packed:
    """A batch's entries packed as struct kvswap_batch_entry[n].

    Every array the C call reads lives in one of a few Python arrays
    held here, so that building a batch costs a handful of Python
    operations per entry, not per segment.
    """

    def __init__(self, entries, out):
        n = len(entries)
        self.n = n
        self.array = (_lib.BatchEntry * n)()
        keys = bytearray()
        offs = array.array("Q")
        lens = array.array("Q")
        grps = array.array("I")
        idxs = array.array("I")
        meta = bytearray()
        spans = []
        for e in entries:
            e = _as_entry(e)
            nseg = len(e.offsets)
            if nseg == 0:
                raise ValueError("entry %r has no segments" % e.key)
            rec = [len(keys), len(e.key), nseg, len(offs), -1, 0, -1, -1,
                   -1, 0]
            keys += e.key
            offs.extend(e.offsets)
            if isinstance(e.lengths, int):
                rec[5] = e.lengths
            else:
                if len(e.lengths) != nseg:
                    raise ValueError("entry %r: %d lengths for %d segments"
                                     % (e.key, len(e.lengths), nseg))
                rec[4] = len(lens)
                lens.extend(e.lengths)
            if e.groups is not None:
                if len(e.groups) != nseg:
                    raise ValueError("entry %r: %d groups for %d segments"
                                     % (e.key, len(e.groups), nseg))
                rec[7] = len(grps)
                grps.extend(e.groups)
            if e.indexes is not None:
                if out:
                    raise ValueError("indexes are for swap-ins only")
                if len(e.indexes) != nseg:
                    raise ValueError("entry %r: %d indexes for %d segments"
                                     % (e.key, len(e.indexes), nseg))
                rec[6] = len(idxs)
                idxs.extend(e.indexes)
            if e.metadata:
                if not out:
                    raise ValueError("metadata is stored by swap-outs only")
                rec[8] = len(meta)
                rec[9] = len(e.metadata)
                meta += e.metadata
            spans.append(rec)
        # Keep the buffers alive and fixed while the call reads them.
        self.bufs = (keys, offs, lens, grps, idxs, meta)
        kb = self._addr(keys)
        ob, lb, gb, ib, mb = (self._addr(x) for x in (offs, lens, grps, idxs,
                                                      meta))
        for i, (k0, kl, nseg, o0, l0, ln, i0, g0, m0, ml) in enumerate(spans):
            be = self.array[i]
            be.key = kb + k0
            be.key_len = kl
            be.nseg = nseg
            be.offsets = ob + 8 * o0
            be.length = ln
            if l0 >= 0:
                be.lengths = lb + 8 * l0
            if i0 >= 0:
                be.indexes = ib + 4 * i0
            if g0 >= 0:
                be.groups = gb + 4 * g0
            if m0 >= 0:
                be.metadata = mb + m0
                be.metadata_len = ml

    @staticmethod
    def _addr(buf):
        if len(buf) == 0:
            return 0
        if isinstance(buf, array.array):
            return buf.buffer_info()[0]
        return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class Region(mmap.mmap):
    """Memory kvswapd reads from and writes into: a sealed memfd, mapped.

    A Region is an ``mmap.mmap``, so it has the buffer protocol on every
    Python: ``memoryview(region)``, ``numpy.frombuffer(region, dtype)``
    and ``torch.frombuffer(region, dtype=...)`` are views of the same
    bytes, without a copy. Make one with ``Client.region()`` or
    ``Client.import_region()``; ``close()`` (or the Client's) unregisters
    it. Bytes that a request in flight names belong to kvswapd until the
    request is done.
    """

    def __new__(cls, client, fd, size, owns_fd, populate=False):
        flags = mmap.MAP_SHARED | (_MAP_POPULATE if populate else 0)
        self = super().__new__(cls, fd, size, flags=flags,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._client = client
        self._fd = fd
        self._owns_fd = owns_fd
        self._handle = None
        self._nbytes = size
        anchor = ctypes.c_char.from_buffer(self)
        self.address = ctypes.addressof(anchor)
        del anchor
        return self

    def __init__(self, *args, **kwargs):
        pass

    @property
    def nbytes(self):
        """The region's size in bytes."""
        return self._nbytes

    @property
    def id(self):
        """The daemon's id of the region."""
        if self._handle is None:
            raise ValueError("the region is closed")
        return lib.kvswap_region_id(self._handle)

    def fileno(self):
        """The memfd (owned by the region; dup it to keep it)."""
        return self._fd

    def numpy(self, dtype="uint8"):
        """A numpy array over the whole region (zero-copy)."""
        import numpy
        return numpy.frombuffer(self, dtype=dtype)

    def torch(self, dtype=None):
        """A 1-D torch tensor over the whole region (zero-copy)."""
        import torch
        return torch.frombuffer(self, dtype=dtype or torch.uint8)

    def close(self):
        """Unregisters the region (waits for the daemon's I/O on it to end)
        and unmaps it once no view of it is left."""
        c, self._client = self._client, None
        try:
            if c is not None and self._handle is not None:
                c._release(self)    # raises if kvswapd refused; freed anyway
        finally:
            self._handle = None
            if self._fd >= 0 and self._owns_fd:
                os.close(self._fd)
            self._fd = -1
            try:
                super().close()
            except BufferError:
                # Views remain: the mapping goes with the last of them.
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Dropped without close(): unregister it before mmap unmaps it.
        if getattr(self, "_handle", None) is not None:
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self):
        return "<kvswap.Region %d bytes at 0x%x>" % (self._nbytes,
                                                      self.address)


class Future:
    """A batch in flight: one libkvswap request (struct kvswap_req).

    ``wait(group)`` / ``await wait_group(group)`` wait for one completion
    group, ``wait()`` / ``result()`` / ``await fut`` for the whole batch;
    ``done()`` does not block. Entries are numbered in the order given.
    """

    def __init__(self, client, region, req, n, what):
        self._client = client
        self.region = region
        self._req = req
        self.entries = n
        self.what = what

    def _h(self):
        if self._req is None:
            raise ValueError("the request is closed")
        return self._req

    def done(self):
        """True once the batch has ended (reads the events queued, never waits)."""
        c = self._client
        with c._lock:
            h = self._h()
            if not lib.kvswap_req_done(h) and c._k:
                lib.kvswap_process(c._k, 0)
            return bool(lib.kvswap_req_done(h))

    def group_done(self, group):
        """True once every segment of ``group`` has landed well (never waits)."""
        with self._client._lock:
            return bool(lib.kvswap_group_done(self._h(), group))

    def wait(self, group=None, timeout=None):
        """Waits for completion group ``group`` or, with None, for the batch.

        Raises the group's first error, or (for the batch) BatchError when
        an entry failed, and kvswap.Timeout when ``timeout`` seconds ran out.
        """
        if group is None:
            self._finish(timeout, True)
            return
        c = self._client
        with c._lock:
            r = lib.kvswap_wait_group(c._conn(), self._h(), group,
                                      _ms(timeout))
            msg = c._msg() if r < 0 else ""
        c._poke()
        if r < 0:
            raise error(r, msg, "%s: group %d" % (self.what, group))

    def next_segment(self, timeout=None):
        """The next segment reported, as (index, status), or None once the
        batch has ended and every report was returned.

        Every segment is reported with ``segment_events=True``, else only
        the failed ones. ``index`` counts the batch's segments entry by
        entry; ``status`` is 0 or -errno. kvswap.Timeout if ``timeout``
        seconds pass first.
        """
        c = self._client
        idx = ctypes.c_uint32(0)
        with c._lock:
            r = lib.kvswap_wait_segment(c._conn(), self._h(), _ms(timeout),
                                        ctypes.byref(idx))
            msg = c._msg() if r < 0 else ""
        c._poke()
        if r == -_errno.ENODATA:
            return None
        if r == -_errno.ETIMEDOUT:
            raise error(r, msg, self.what)
        return idx.value, r

    def _finish(self, timeout, check):
        """Waits for the batch; its statuses, raising as wait()/result() say."""
        c = self._client
        ms = _ms(timeout)
        with c._lock:
            h = self._h()
            if c._k:
                r = lib.kvswap_wait(c._k, h, ms)
            elif lib.kvswap_req_done(h):
                r = lib.kvswap_req_status(h)
            else:
                r = -_errno.ENOTCONN
            msg = c._msg() if r < 0 and c._k else ""
            if r == -_errno.ETIMEDOUT:
                raise error(r, msg, self.what)
            st = self._statuses()
            errs = {i: error(x, (lib.kvswap_req_entry_error(h, i) or b"")
                             .decode(errors="replace"), "entry %d" % i)
                    for i, x in enumerate(st) if x < 0}
        c._poke()
        if errs and check:
            raise BatchError(st, errs, self.what)
        if r < 0 and not errs:
            raise error(r, msg, self.what)
        return st

    def _statuses(self):
        h = self._h()
        return [lib.kvswap_req_entry_status(h, i) for i in range(self.entries)]

    def statuses(self):
        """Each entry's outcome: 0, kvswap.SKIPPED, -errno, -EINPROGRESS."""
        with self._client._lock:
            return self._statuses()

    def result(self, timeout=None, check=True):
        """Waits for the batch; returns each entry's status (see statuses()).

        With check (the default) a failed entry raises BatchError (its
        ``statuses`` and ``errors`` say which); without, failures are
        only in the list. A failure of the whole request (the
        connection lost, say) raises either way.
        """
        return self._finish(timeout, check)

    def metadata(self, entry):
        """The metadata a finished swap-in read for ``entry`` (b"" if none)."""
        n = ctypes.c_size_t(0)
        with self._client._lock:
            p = lib.kvswap_req_entry_metadata(self._h(), entry,
                                              ctypes.byref(n))
            return ctypes.string_at(p, n.value) if p else b""

    def cancel(self):
        """Asks the daemon to drop what it has not started; the batch still
        ends (wait() for it before reusing its bytes)."""
        c = self._client
        with c._lock:
            if not c._k:
                return
            r = lib.kvswap_cancel(c._k, self._h())
            msg = c._msg() if r < 0 else ""
        if r < 0:
            raise error(r, msg, "cancel")

    def cancelled(self):
        with self._client._lock:
            return bool(lib.kvswap_req_cancelled(self._h()))

    async def wait_group(self, group):
        """``await fut.wait_group(i)``: completion group ``i`` on asyncio."""
        from .aio import driver
        await driver(self._client).wait(self, group)

    async def wait_all(self):
        """``await fut.wait_all()``: the whole batch on asyncio; returns statuses."""
        from .aio import driver
        await driver(self._client).wait(self, None)
        return self.result()

    def __await__(self):
        return self.wait_all().__await__()

    def close(self):
        """Frees the handle. A batch still in flight runs on in the daemon;
        its region stays the daemon's until then."""
        c = self._client
        with c._lock:
            h, self._req = self._req, None
            if h is not None:
                lib.kvswap_req_free(h)
                c._pending.discard(self)

    def __del__(self):
        if getattr(self, "_req", None) is not None:
            try:
                self.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    """One connection to kvswapd (libkvswap's struct kvswap).

    ``socket``: the daemon's socket path (None: $KVSWAP_SOCKET, else
    /run/kvswap/kvswapd.sock, as libkvswap). A Client may be shared by
    threads (a lock serializes its calls, blocking ones too); the GIL is
    released during every libkvswap call. For I/O in parallel use one
    Client per thread.
    """

    def __init__(self, socket=None):
        self._lock = threading.RLock()
        self._k = None
        self._regions = weakref.WeakSet()
        self._pending = weakref.WeakSet()
        self._drivers = {}
        h = ctypes.c_void_p()
        path = os.fsencode(socket) if socket is not None else None
        r = lib.kvswap_connect(path, ctypes.byref(h))
        if r < 0:
            raise error(r, (lib.kvswap_last_error(None) or b"").decode(
                errors="replace"), "connect %s" % (socket or "(default)"))
        self._k = h.value
        lim = lib.kvswap_limits(self._k).contents
        self.limits = {f: (getattr(lim, f).decode() if f == "daemon"
                           else getattr(lim, f)) for f, _ in lim._fields_}
        bl = _lib.BatchLimits()
        if lib.kvswap_batch_limits(self._k, ctypes.byref(bl)) == 0:
            self.batch_limits = {f: getattr(bl, f) for f, _ in bl._fields_}
        else:
            self.batch_limits = None
        self.alignment = self.limits["alignment"]

    # --- plumbing ---------------------------------------------------------

    def _conn(self):
        if not self._k:
            raise error(_errno.ENOTCONN, "the client is closed")
        return self._k

    def _msg(self):
        return (lib.kvswap_last_error(self._k) or b"").decode(errors="replace")

    def _call(self, what, fn, *args):
        with self._lock:
            r = fn(self._conn(), *args)
            if r < 0:
                raise error(r, self._msg(), what)
        self._poke()
        return r

    def _poke(self):
        """Tells asyncio drivers that events may have been read elsewhere."""
        for d in list(self._drivers.values()):
            d.poke()

    # --- connection -------------------------------------------------------

    def fileno(self):
        """The socket's fd: readable when events wait; then call process()."""
        return lib.kvswap_fd(self._conn())

    event_fd = fileno

    def process(self, timeout=0):
        """Reads and dispatches events, waiting up to ``timeout`` seconds
        (0: not at all, None: forever) for the first; returns how many."""
        return self._call("process", lib.kvswap_process, _ms(timeout))

    def wait_any(self, futures, timeout=None):
        """Waits until at least one of ``futures`` (batches of this client)
        has ended; returns those that have, in the order given ([] when
        ``timeout`` seconds passed first). Reads events as they come, so
        a caller can keep a fixed number of batches in flight."""
        futures = list(futures)
        ms = _ms(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                k = self._conn()
                done = [f for f in futures
                        if lib.kvswap_req_done(f._h())]
                if done or not futures:
                    break
                if deadline is not None:
                    ms = max(0, int((deadline - time.monotonic()) * 1000))
                r = lib.kvswap_process(k, ms)
                if r < 0:
                    raise error(r, self._msg(), "wait_any")
                if r == 0 and deadline is not None and \
                        time.monotonic() >= deadline:
                    done = [f for f in futures
                            if lib.kvswap_req_done(f._h())]
                    break
        self._poke()
        return done

    def close(self):
        """Closes the connection: batches in flight end with ECANCELED and
        regions are unregistered. Accepts a second call."""
        with self._lock:
            for d in list(self._drivers.values()):
                d.close()
            self._drivers.clear()
            k, self._k = self._k, None
            if not k:
                return
            for reg in list(self._regions):
                reg._handle = None
            lib.kvswap_close(k)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_k", None):
            self.close()

    # --- regions ----------------------------------------------------------

    def region(self, nbytes, hugepages=False):
        """A new Region of ``nbytes`` (rounded up to a page, or a huge page).

        hugepages: back it with the default huge pages, taken at once;
        kvswap.KvswapError ENOMEM if too few are reserved
        (vm.nr_hugepages), EOPNOTSUPP if the system has none. Never a
        silent fallback to small pages.
        """
        if nbytes <= 0:
            raise ValueError("nbytes must be at least 1")
        page = _huge_page_size() if hugepages else mmap.PAGESIZE
        if hugepages and page == 0:
            raise error(_errno.EOPNOTSUPP, "this system has no huge pages",
                        "region")
        size = (nbytes + page - 1) // page * page
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        if hugepages:
            flags |= os.MFD_HUGETLB
        fd = os.memfd_create("kvswap-region", flags)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | fcntl.F_SEAL_SEAL)
            try:
                reg = Region(self, fd, size, True, populate=hugepages)
            except OSError as e:
                raise error(e.errno, "mmap %d bytes%s%s" % (
                    size, " of huge pages" if hugepages else "",
                    " (too few reserved: sysctl vm.nr_hugepages)"
                    if hugepages and e.errno == _errno.ENOMEM else ""),
                    "region") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            self._register(reg, fd, size)
        except BaseException:
            reg.close()
            raise
        return reg

    def import_region(self, fd, size=None, seal=True):
        """Registers an existing memfd and maps it: returns a Region.

        ``fd`` stays the caller's (the Region keeps a duplicate). kvswapd
        needs it sealed against shrinking and growing; with ``seal`` the
        seals are added when missing (the memfd needs MFD_ALLOW_SEALING).
        ``size``: bytes from offset 0 (None: the file's size).
        """
        if size is None:
            size = os.fstat(fd).st_size
        if seal:
            have = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            if have & _SEALS != _SEALS:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        own = os.dup(fd)
        os.set_inheritable(own, False)
        try:
            reg = Region(self, own, size, True)
        except BaseException:
            os.close(own)
            raise
        try:
            self._register(reg, own, size)
        except BaseException:
            reg.close()
            raise
        return reg

    def _register(self, reg, fd, size):
        h = ctypes.c_void_p()
        self._call("register region", lib.kvswap_region_import, fd,
                   reg.address, size, ctypes.byref(h))
        reg._handle = h.value
        self._regions.add(reg)

    def _release(self, reg):
        with self._lock:
            if not self._k or reg._handle is None:
                return
            h, reg._handle = reg._handle, None
            self._regions.discard(reg)
            r = lib.kvswap_region_release(self._k, h)
            if r < 0:
                raise error(r, self._msg(), "release region")

    # --- batches ----------------------------------------------------------

    def _batch(self, out, region, entries, flags, verify, segment_events,
               request_order):
        if not isinstance(region, Region) or region._handle is None:
            raise ValueError("region must be a registered kvswap.Region")
        if not verify:
            flags |= _lib.NO_VERIFY
        if segment_events:
            flags |= _lib.SEGMENT_EVENTS
        if request_order:
            flags |= _lib.REQUEST_ORDER
        entries = list(entries)
        if not entries:
            raise ValueError("a batch needs at least one entry")
        p = _Packed(entries, out)
        fn = lib.kvswap_swap_out_batch if out else lib.kvswap_swap_in_batch
        what = "swap-out" if out else "swap-in"
        h = ctypes.c_void_p()
        with self._lock:
            r = fn(self._conn(), region._handle, p.array, p.n, flags,
                   ctypes.byref(h))
            if r < 0:
                raise error(r, self._msg(), "%s batch of %d entries" % (
                    what, p.n))
            fut = Future(self, region, h.value, p.n, what)
            self._pending.add(fut)
        return fut

    def swap_out(self, region, entries, *, durable=False, cache=False,
                 pinned=False, if_absent=False, wait_leases=False,
                 verify=True, segment_events=False, request_order=False):
        """Starts storing ``entries`` (Entry objects or tuples of Entry's
        arguments) from ``region``; returns a Future.

        durable / cache: the batch ends once on stable storage / once
        written (neither: the daemon's default). pinned: never evicted.
        if_absent: keys stored or being written are skipped
        (kvswap.SKIPPED). wait_leases: wait for leases instead of ENOSPC.
        verify: libkvswap sends each segment's CRC32C. A completion group
        is done once the daemon has read its bytes (they may change from
        then on).
        """
        flags = ((_lib.DURABLE if durable else 0) |
                 (_lib.CACHE if cache else 0) |
                 (_lib.PINNED if pinned else 0) |
                 (_lib.IF_ABSENT if if_absent else 0) |
                 (_lib.WAIT_LEASES if wait_leases else 0))
        return self._batch(True, region, entries, flags, verify,
                           segment_events, request_order)

    def swap_in(self, region, entries, *, verify=True, segment_events=False,
                request_order=False):
        """Starts reading ``entries`` into ``region``; returns a Future.

        A missing or damaged entry fails alone. verify: libkvswap checks
        each segment's CRC32C against the stored one (a group's bytes
        have *landed* at wait(group) and are *verified* when the batch is
        done; a damaged entry is deleted and fails with EBADMSG).
        request_order: submit entry by entry (faster for bulk loads waited
        on whole; groups then complete late, together).
        """
        return self._batch(False, region, entries, 0, verify, segment_events,
                           request_order)

    # --- queries ----------------------------------------------------------

    def lookup(self, keys, lease_ms=0, present=False):
        """How many leading ``keys`` are stored (the hit prefix).

        lease_ms (at most 60000): protect the present keys from eviction
        that long, so the swap-in that follows finds them. With present,
        returns (prefix, [bool per key]).
        """
        keys = list(keys)
        if not keys:
            return (0, []) if present else 0
        kept, ptrs, lens = _keys_array(keys)
        pres = (ctypes.c_bool * len(keys))()
        r = self._call("lookup", lib.kvswap_lookup_lease, ptrs, lens,
                       len(keys), lease_ms, pres)
        return (r, [bool(x) for x in pres]) if present else r

    def delete(self, keys):
        """Deletes one key (bytes/str; NotFound if absent) or a list of keys
        (a missing one is no error); returns the number deleted."""
        if isinstance(keys, (bytes, str, bytearray)):
            b = _key(keys)
            self._call("delete %r" % b, lib.kvswap_delete, b, len(b))
            return 1
        keys = list(keys)
        if not keys:
            return 0
        kept, ptrs, lens = _keys_array(keys)
        return self._call("delete", lib.kvswap_delete_keys, ptrs, lens,
                          len(keys), None)

    def describe(self, key):
        """The stored entry ``key``: dict of key, size, segments, lengths,
        metadata. NotFound if absent."""
        b = _key(key)
        e = _lib.EntryInfo()
        self._call("describe %r" % b, lib.kvswap_describe, b, len(b),
                   ctypes.byref(e))
        try:
            return {
                "key": ctypes.string_at(e.key, e.key_len),
                "size": e.size,
                "segments": e.segments,
                "lengths": [e.lengths[i] for i in range(e.segments)]
                if e.lengths else [],
                "metadata": ctypes.string_at(e.metadata, e.metadata_len)
                if e.metadata else b"",
            }
        finally:
            lib.kvswap_entry_clear(ctypes.byref(e))

    def list(self, limit=1000):
        """Yields every stored entry as dict(key, size, segments), ``limit``
        per request."""
        cursor = ctypes.c_uint64(0)
        while True:
            arr = ctypes.POINTER(_lib.EntryInfo)()
            n = ctypes.c_uint32(0)
            self._call("list", lib.kvswap_list, ctypes.byref(cursor), limit,
                       ctypes.byref(arr), ctypes.byref(n))
            try:
                page = [{"key": ctypes.string_at(arr[i].key, arr[i].key_len),
                         "size": arr[i].size, "segments": arr[i].segments}
                        for i in range(n.value)]
            finally:
                lib.kvswap_entries_free(arr, n.value)
            yield from page
            if cursor.value == 0:
                return

    def stat(self):
        """The daemon's statistics (docs/PROTOCOL.md, Stat) as a dict."""
        s = _lib.Stat()
        self._call("stat", lib.kvswap_stat, ctypes.byref(s))
        return {f: getattr(s, f) for f, _ in s._fields_}
