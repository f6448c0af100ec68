# SPDX-License-Identifier: MIT
"""asyncio: completions of a Client's batches driven by its socket's fd.

``await fut.wait_group(i)`` and ``await fut`` use the driver of the running
loop: it watches ``client.fileno()`` with ``loop.add_reader()``, reads the
events when it is readable (``kvswap_process(k, 0)``, which never blocks)
and wakes the coroutines whose group or batch is over. A framework with
its own poller does the same with ``client.fileno()`` and
``client.process(0)``.
"""
import asyncio
import errno as _errno

from ._lib import lib
from .errors import error


class _Driver:
    def __init__(self, client, loop):
        self.client = client
        self.loop = loop
        self.waiters = []       # (Future, group or None, asyncio.Future)
        self.watching = False
        self.poked = False

    def _over(self, fut, group):
        """None while not over, else the result code (0 or -errno)."""
        c = self.client
        h = fut._h()
        if group is None:
            return lib.kvswap_req_status(h) if lib.kvswap_req_done(h) else None
        if lib.kvswap_group_done(h, group):
            return 0
        r = lib.kvswap_wait_group(c._k, h, group, 0)
        return None if r == -_errno.ETIMEDOUT else r

    def _check(self):
        c = self.client
        left = []
        with c._lock:
            for fut, group, af in self.waiters:
                if af.done():
                    continue
                try:
                    r = self._over(fut, group) if c._k else -_errno.ENOTCONN
                except ValueError as e:
                    af.set_exception(e)
                    continue
                if r is None:
                    left.append((fut, group, af))
                elif r < 0 and group is not None:
                    af.set_exception(error(r, c._msg() if c._k else "",
                                           "%s: group %d" % (fut.what, group)))
                else:
                    af.set_result(r)
        self.waiters = left
        if not left and self.watching:
            self.loop.remove_reader(self.client.fileno())
            self.watching = False

    def _readable(self):
        c = self.client
        with c._lock:
            if c._k:
                lib.kvswap_process(c._k, 0)
        self._check()

    def _poked(self):
        self.poked = False
        self._check()

    def poke(self):
        """Events may have been read by a blocking call: look again soon."""
        if self.waiters and not self.poked and not self.loop.is_closed():
            self.poked = True
            self.loop.call_soon_threadsafe(self._poked)

    async def wait(self, fut, group):
        af = self.loop.create_future()
        self.waiters.append((fut, group, af))
        if not self.watching:
            self.loop.add_reader(self.client.fileno(), self._readable)
            self.watching = True
        # Events read before the reader was set leave nothing to read.
        self._check()
        return await af

    def close(self):
        if self.watching and not self.loop.is_closed():
            try:
                self.loop.remove_reader(self.client.fileno())
            except Exception:
                pass
        self.watching = False
        for _, _, af in self.waiters:
            if not af.done() and not self.loop.is_closed():
                af.set_exception(error(_errno.ENOTCONN, "the client closed"))
        self.waiters = []


def driver(client):
    """The driver of ``client`` on the running event loop."""
    loop = asyncio.get_running_loop()
    for old in [l for l in client._drivers if l.is_closed()]:
        del client._drivers[old]    # each asyncio.run() has its own loop
    d = client._drivers.get(loop)
    if d is None or d.loop is not loop:
        d = client._drivers[loop] = _Driver(client, loop)
    return d
