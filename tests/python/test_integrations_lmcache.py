# SPDX-License-Identifier: MIT
"""The LMCache native L2 client driven as LMCache drives it, against the
real kvswapd.

LMCache's native_plugin factory builds the client from
``adapter_params`` and checks its methods; NativeConnectorL2Adapter
then submits batches from its controller threads and runs a demux
thread that polls ``event_fd()`` for POLLIN, calls
``drain_completions()`` and routes each (future_id, ok, error,
result_bools) by its future id. ``Demux`` below is that loop.
"""
import ctypes
import os
import select
import threading

import pytest

from kvswap.integrations import lmcache as kl

REQUIRED = ["event_fd", "submit_batch_get", "submit_batch_set",
            "submit_batch_exists", "drain_completions", "close"]
OBJ = 3 * 4096 + 100          # an LMCache chunk need not be block-sized


class Demux:
    """NativeConnectorL2Adapter._demux_loop, reduced to routing."""

    def __init__(self, native):
        self.native = native
        self.done = {}
        self.cv = threading.Condition()
        self.stop = False
        self.polls = 0
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        p = select.poll()
        p.register(self.native.event_fd(), select.POLLIN)
        while not self.stop:
            if not p.poll(500):
                continue
            self.polls += 1
            for fid, ok, err, bools in self.native.drain_completions():
                with self.cv:
                    assert fid not in self.done, "future %d twice" % fid
                    self.done[fid] = (ok, err, bools)
                    self.cv.notify_all()

    def wait(self, fid, timeout=20):
        with self.cv:
            assert self.cv.wait_for(lambda: fid in self.done, timeout), \
                "future %d never completed" % fid
            return self.done.pop(fid)

    def close(self):
        self.stop = True
        self.t.join()


def buffers(n, seed):
    out = []
    for i in range(n):
        b = (ctypes.c_ubyte * OBJ)()
        ctypes.memmove(b, os.urandom(OBJ) if seed is None else
                       bytes([(seed + i + j) % 251 for j in range(256)]) *
                       (OBJ // 256) + bytes(OBJ % 256), OBJ)
        out.append(b)
    return out


@pytest.fixture
def native(daemon):
    # native_plugin: connector_cls(**adapter_params), then the check.
    n = kl.KvswapNativeClient(socket=daemon.socket, staging_mb=1,
                              key_prefix="lmc/")
    for m in REQUIRED + ["submit_batch_delete"]:
        assert callable(getattr(n, m, None)), m
    d = Demux(n)
    yield n, d
    d.close()
    n.close()


def test_lmcache_store_lookup_load_delete(native):
    n, d = native
    keys = ["tiny@00000000@0@%064x" % i for i in range(4)]
    src = buffers(4, 1)

    # StoreController: submit_store_task -> submit_batch_set(keys, views).
    fid = n.submit_batch_set(keys, [memoryview(b) for b in src])
    assert d.wait(fid) == (True, "", [True] * 4)
    # Stored again: counts as stored.
    fid = n.submit_batch_set(keys[:1], [memoryview(src[0])])
    assert d.wait(fid)[0] is True

    # PrefetchController: lookup and lock, then load.
    fid = n.submit_batch_exists(keys[:2] + ["nope"] + keys[2:])
    assert d.wait(fid) == (True, "", [True, True, False, True, True])
    dst = [(ctypes.c_ubyte * OBJ)() for _ in range(4)]
    fid = n.submit_batch_get(keys[::-1] + ["nope"],
                             [memoryview(b) for b in dst[::-1]] +
                             [memoryview(bytearray(OBJ))])
    ok, err, bools = d.wait(fid)
    assert bools == [True] * 4 + [False] and ok is False and "entry 4" in err
    for a, b in zip(src, dst):
        assert bytes(a) == bytes(b)

    # Eviction: delete, then nothing is found.
    fid = n.submit_batch_delete(keys[:3] + ["nope"])
    assert d.wait(fid) == (True, "", [True, True, True, False])
    fid = n.submit_batch_exists(keys)
    assert d.wait(fid)[2] == [False, False, False, True]

    s = n.stats()
    assert s["staged_bytes"] == 10 * OBJ and s["zero_copy_bytes"] == 0


def test_lmcache_zero_copy_in_a_region(native):
    n, d = native
    r = n.region(8 * 4096)
    mv = memoryview(r)
    mv[:4096] = bytes(range(256)) * 16
    mv[4096:8192] = bytes(reversed(range(256))) * 16
    fid = n.submit_batch_set(["z0", "z1"], [mv[:4096], mv[4096:8192]])
    assert d.wait(fid) == (True, "", [True, True])
    fid = n.submit_batch_get(["z1", "z0"], [mv[16384:20480],
                                            mv[20480:24576]])
    assert d.wait(fid) == (True, "", [True, True])
    assert mv[16384:20480] == mv[4096:8192] and mv[20480:24576] == mv[:4096]
    assert n.stats()["zero_copy_bytes"] == 4 * 4096
    del mv
    r.close()


def test_lmcache_staging_full_is_a_clean_failure(native):
    n, d = native
    big = [(ctypes.c_ubyte * (600 * 1024))() for _ in range(2)]
    fid = n.submit_batch_set(["b0", "b1"], [memoryview(b) for b in big])
    ok, err, bools = d.wait(fid)
    assert ok is False and "staging region full" in err and bools is None
    assert n.stats()["staging_full"] == 1
    # The staging region is whole again: a batch that fits goes through.
    fid = n.submit_batch_set(["b0"], [memoryview(big[0])])
    assert d.wait(fid) == (True, "", [True])


def test_lmcache_many_batches_in_flight(native):
    n, d = native
    bufs = buffers(16, None)
    fids = [n.submit_batch_set(["m%d" % i], [memoryview(bufs[i])])
            for i in range(16)]
    for f in fids:
        assert d.wait(f) == (True, "", [True])
    out = [(ctypes.c_ubyte * OBJ)() for _ in range(16)]
    fids = [n.submit_batch_get(["m%d" % i], [memoryview(out[i])])
            for i in range(16)]
    for f in fids:
        assert d.wait(f)[0] is True
    assert all(bytes(a) == bytes(b) for a, b in zip(bufs, out))
