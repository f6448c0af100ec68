# SPDX-License-Identifier: MIT
"""The binding against the real kvswapd: connection, regions, batches, queries."""
import errno
import fcntl
import mmap
import os
import threading
import time

import numpy
import pytest
import torch

import kvswap

SEG = 64 << 10


def fill(region, seed):
    a = numpy.frombuffer(region, dtype=numpy.uint32)
    a[:] = numpy.arange(len(a), dtype=numpy.uint32) * 2654435761 + seed
    return numpy.frombuffer(region, dtype=numpy.uint8).copy()


def test_connect_error_names_the_socket(tmp_path):
    with pytest.raises(kvswap.KvswapError) as ei:
        kvswap.Client(str(tmp_path / "nobody.sock"))
    assert ei.value.errno in (errno.ENOENT, errno.ECONNREFUSED)
    assert "nobody.sock" in str(ei.value)


def test_default_socket_is_libkvswaps(daemon, monkeypatch):
    monkeypatch.setenv("KVSWAP_SOCKET", daemon.socket)
    with kvswap.Client() as c:
        assert c.limits["daemon"].startswith("kvswapd")


def test_limits(client):
    assert client.alignment == 4096
    assert client.batch_limits["max_groups"] >= 32
    assert client.fileno() >= 0


def test_region_buffer_protocol_zero_copy(client):
    with client.region(100000) as r:
        assert r.nbytes == 102400 and len(r) == 102400
        mv = memoryview(r)
        a = numpy.frombuffer(r, dtype=numpy.uint8)
        t = torch.frombuffer(r, dtype=torch.uint8)
        assert a.ctypes.data == r.address == t.data_ptr()
        a[5] = 77
        assert mv[5] == 77 and t[5].item() == 77
        t[6] = 78
        assert a[6] == 78
        # Views outlive close(): the mapping stays until the last goes.
        mv.release()
    assert a[5] == 77 and t[6].item() == 78
    del a, t


def test_roundtrip_per_segment_placement(client):
    with client.region(64 * SEG) as r:
        want = fill(r, 1)
        ents = [kvswap.Entry("rt-a", [0, 5 * SEG, 2 * SEG], SEG,
                             groups=[0, 1, 1], metadata=b"meta-a"),
                kvswap.Entry(b"rt-b", [9 * SEG], [1000])]
        with client.swap_out(r, ents, cache=True) as f:
            assert f.result() == [0, 0]
            assert f.done()
        numpy.frombuffer(r, dtype=numpy.uint8)[:] = 0
        # Back to other places, segment 2 of rt-a first, one group each.
        ents = [kvswap.Entry("rt-a", [20 * SEG, 30 * SEG, 40 * SEG], SEG,
                             groups=[3, 4, 5], indexes=[2, 0, 1]),
                kvswap.Entry("rt-b", [50 * SEG], 1000, groups=[5])]
        with client.swap_in(r, ents) as f:
            for g in (3, 4, 5):
                f.wait(g)
                assert f.group_done(g)
            assert f.result() == [0, 0]
            assert f.metadata(0) == b"meta-a"
            assert f.metadata(1) == b""
        got = numpy.frombuffer(r, dtype=numpy.uint8)
        assert (got[20 * SEG:21 * SEG] == want[2 * SEG:3 * SEG]).all()
        assert (got[30 * SEG:31 * SEG] == want[0:SEG]).all()
        assert (got[40 * SEG:41 * SEG] == want[5 * SEG:6 * SEG]).all()
        assert (got[50 * SEG:50 * SEG + 1000] == want[9 * SEG:9 * SEG + 1000]).all()
        del got


def test_failed_entry_fails_alone_with_daemons_message(client):
    with client.region(8 * SEG) as r:
        fill(r, 2)
        client.swap_out(r, [("fa-1", [0], SEG)]).result()
        f = client.swap_in(r, [("fa-1", [SEG], SEG),
                               ("fa-none", [2 * SEG], SEG, [1])])
        with pytest.raises(kvswap.BatchError) as ei:
            f.result()
        e = ei.value
        assert e.statuses == [0, -errno.ENOENT]
        assert isinstance(e.errors[1], kvswap.NotFound)
        assert "no such entry" in e.errors[1].message
        assert f.result(check=False) == [0, -errno.ENOENT]
        with pytest.raises(kvswap.NotFound):
            f.wait(1)               # the missing entry's group
        f.wait(0)
        f.close()


def test_bad_offset_refused_client_still_works(client):
    with client.region(4 * SEG) as r:
        with pytest.raises(kvswap.KvswapError) as ei:
            client.swap_out(r, [("bad", [100], SEG)]).result()
        assert ei.value.errno == errno.EINVAL
        assert ei.value.message
        client.swap_out(r, [("good", [0], SEG)]).result()
        assert client.lookup(["good"]) == 1


def test_if_absent_skips(client):
    with client.region(4 * SEG) as r:
        client.swap_out(r, [("ia", [0], SEG)]).result()
        st = client.swap_out(r, [("ia", [0], SEG), ("ib", [SEG], SEG)],
                             if_absent=True).result()
        assert st == [kvswap.SKIPPED, 0]


def test_lookup_prefix_lease_delete_list_describe(client):
    with client.region(4 * SEG) as r:
        client.swap_out(r, [("q-0", [0], SEG), ("q-1", [SEG, 2 * SEG], SEG)],
                        cache=True).result()
    assert client.lookup(["q-0", "q-1", "q-x", "q-0"]) == 2
    n, present = client.lookup(["q-x", "q-1"], lease_ms=1000, present=True)
    assert (n, present) == (0, [False, True])
    d = client.describe("q-1")
    assert d["segments"] == 2 and d["lengths"] == [SEG, SEG]
    assert d["size"] == 2 * SEG
    keys = {e["key"] for e in client.list(limit=1)}
    assert {b"q-0", b"q-1"} <= keys
    st = client.stat()
    assert st["entries"] >= 2 and st["capacity"] > 0
    assert client.delete(["q-0", "q-x"]) == 1
    client.delete("q-1")
    with pytest.raises(kvswap.NotFound) as ei:
        client.delete("q-1")
    assert "no such entry" in ei.value.message
    with pytest.raises(kvswap.NotFound):
        client.describe("q-1")
    assert client.lookup(["q-0"]) == 0


def test_import_existing_memfd(client):
    fd = os.memfd_create("mine", os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, 8 * SEG)
        mine = mmap.mmap(fd, 8 * SEG)
        mine[:SEG] = bytes(range(256)) * (SEG // 256)
        with client.import_region(fd) as r:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW
            client.swap_out(r, [("imp", [0], SEG)]).result()
            client.swap_in(r, [("imp", [4 * SEG], SEG)]).result()
        # The caller's own mapping sees what kvswapd wrote.
        assert mine[4 * SEG:5 * SEG] == mine[:SEG]
        mine.close()
    finally:
        os.close(fd)


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def test_hugepages_never_fall_back(client):
    page = meminfo("Hugepagesize") * 1024
    free = meminfo("HugePages_Free")
    # One page more than are free: refused, never small pages instead.
    with pytest.raises(kvswap.KvswapError) as ei:
        client.region((free + 1) * max(page, 4096), hugepages=True)
    assert ei.value.errno in (errno.ENOMEM, errno.EOPNOTSUPP), ei.value
    if ei.value.errno == errno.ENOMEM:
        assert "vm.nr_hugepages" in ei.value.message
    if free < 1:
        pytest.skip("no huge pages free here (vm.nr_hugepages): only the "
                    "refusal was checked")
    with client.region(1 << 20, hugepages=True) as r:
        assert r.nbytes == page
        # The memfd is hugetlbfs-backed: its block size is a huge page.
        assert os.fstat(r.fileno()).st_blksize == page
        client.swap_out(r, [("huge", [0], SEG)]).result()
        client.swap_in(r, [("huge", [SEG], SEG)]).result()
        assert r[:SEG] == r[SEG:2 * SEG]


def test_gil_released_while_blocking(client):
    """A Python thread runs while the main thread waits inside libkvswap."""
    stamps = []
    stop = threading.Event()

    def spin():
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2000 == 0:
                stamps.append(time.monotonic())

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    assert client.process(timeout=0.6) == 0     # nothing comes: it blocks
    t1 = time.monotonic()
    stop.set()
    t.join()
    inside = [s for s in stamps if t0 + 0.15 < s < t1 - 0.15]
    assert t1 - t0 >= 0.55
    assert len(inside) > 10, "no Python ran during the blocking call"


def test_cancel_and_closed_handle(client):
    with client.region(4 * SEG) as r:
        f = client.swap_out(r, [("cx", [0], SEG)])
        f.cancel()
        st = f.result(check=False)
        assert st[0] in (0, -errno.ECANCELED)
        f.close()
        with pytest.raises(ValueError):
            f.done()


def test_close_client_then_region(daemon):
    c = kvswap.Client(daemon.socket)
    r = c.region(SEG)
    c.close()
    r.close()                       # no double free, no crash
    with pytest.raises(kvswap.Disconnected):
        c.stat()


def test_wait_timeout_then_finish(client):
    n = 32
    with client.region(2 * n * SEG) as r:
        ents = [("to-%d" % i, [i * SEG], SEG) for i in range(n)]
        client.swap_out(r, ents, cache=True).result()
        f = client.swap_in(r, [(k, [(n + i) * SEG], SEG, [i % 4])
                               for i, (k, _, _) in enumerate(ents)])
        # 2 MiB cannot come back from the store in no time at all.
        with pytest.raises(kvswap.Timeout) as ei:
            f.wait(timeout=0)
        assert ei.value.errno == errno.ETIMEDOUT
        assert f.result(timeout=30) == [0] * n
        f.close()


def test_threads_share_a_client(client):
    errors = []

    def worker(w):
        try:
            with client.region(4 * SEG) as r:
                mv = memoryview(r)
                for i in range(10):
                    mv[:SEG] = bytes([w * 16 + i]) * SEG
                    k = "th-%d-%d" % (w, i)
                    client.swap_out(r, [(k, [0], SEG)]).result()
                    client.swap_in(r, [(k, [2 * SEG], SEG)]).result()
                    assert mv[2 * SEG:3 * SEG] == mv[:SEG]
                mv.release()
        except Exception as e:          # reported by the main thread
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert client.lookup(["th-%d-9" % w for w in range(4)]) == 4


def test_region_dropped_without_close_is_unregistered(client):
    before = client.stat()["regions"]
    r = client.region(SEG)
    assert client.stat()["regions"] == before + 1
    del r
    assert client.stat()["regions"] == before


def test_segment_events(client):
    with client.region(16 * SEG) as r:
        client.swap_out(r, [("se-a", [0, SEG, 2 * SEG], SEG),
                            ("se-b", [3 * SEG], SEG)]).result()
        f = client.swap_in(r, [("se-a", [8 * SEG, 9 * SEG, 10 * SEG], SEG),
                               ("se-b", [11 * SEG], SEG)],
                           segment_events=True)
        got = []
        while True:
            ev = f.next_segment(timeout=30)
            if ev is None:
                break
            got.append(ev)
        assert sorted(got) == [(0, 0), (1, 0), (2, 0), (3, 0)]
        assert f.result() == [0, 0]
        # Without segment events, only failed segments are reported.
        f = client.swap_in(r, [("se-a", [8 * SEG], SEG),
                               ("se-none", [12 * SEG, 13 * SEG], SEG)])
        got = []
        while True:
            ev = f.next_segment(timeout=30)
            if ev is None:
                break
            got.append(ev)
        assert all(st < 0 for _, st in got) and got
        assert {i for i, _ in got} <= {1, 2}
        assert f.result(check=False) == [0, -errno.ENOENT]


def test_wait_any_keeps_batches_in_flight(client):
    n = 24
    with client.region(2 * n * SEG) as r:
        client.swap_out(r, [("wa-%d" % i, [i * SEG], SEG)
                            for i in range(n)], cache=True).result()
        todo = list(range(n))
        inflight, ended = [], 0
        while todo or inflight:
            while todo and len(inflight) < 4:
                i = todo.pop()
                inflight.append(client.swap_in(
                    r, [("wa-%d" % i, [(n + i) * SEG], SEG)]))
            done = client.wait_any(inflight, timeout=30)
            assert done, "wait_any timed out"
            for f in done:
                assert f.done() and f.result() == [0]
                inflight.remove(f)
                f.close()
                ended += 1
        assert ended == n
        mv = memoryview(r)
        assert mv[n * SEG:] == mv[:n * SEG]
        mv.release()
        # Nothing to wait for: [] at once; an ended batch: itself.
        f = client.swap_in(r, [("wa-0", [0], SEG)])
        f.result()
        assert client.wait_any([], timeout=0.05) == []
        assert client.wait_any([f], timeout=0) == [f]
        f.close()
