#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Python swap-in through the binding against kvswapctl bench, same shape, same run.

Both read TOTAL bytes (default 1 GiB) of SEGMENT-byte segments (64 KiB)
through the batch API: requests of ENTRIES keys (8) of LAYERS segments
(32), completion group = layer, DEPTH requests in flight (8), libkvswap's
CRC32C check on, from one kvswapd on one store. Python reads into one
Region viewed as a numpy array, each batch of consecutive keys once, in
random order; kvswapctl bench --op in --total reads into its own region
batches of consecutive keys from a random start. The runs alternate,
and so does which goes first in a pair (C Python, Python C, ...); the
figure is the ratio of the medians, with every run listed.

    make bench-python            # or: bench/python-swapin.py [options]

Writes a JSON summary to $BUILD/bench/python-swapin.json (--out).
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

import numpy  # noqa: E402

import kvswap  # noqa: E402


def size(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * m[s[-1].upper()] if s[-1].upper() in m else int(s)


def start_daemon(store_size):
    from conftest import Daemon
    os.environ.setdefault("KVSWAP_BUILD", BUILD)
    d = Daemon(store_size=store_size)
    return d.start()


def c_run(a, sock):
    cmd = [os.path.join(BUILD, "kvswapctl"), "--socket", sock, "bench",
           "--op", "in", "--segment-size", str(a.segment),
           "--entries-per-request", str(a.entries), "--layers", str(a.layers),
           "--depth", str(a.depth), "--total", str(a.total),
           "--working-set", str(a.total), "--json"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    j = json.loads(out)
    if j["errors"] or j["failed_entries"]:
        raise SystemExit("kvswapctl bench failed: %s" % j["first_error"])
    return j["throughput_bytes_per_s"], j["client_cpu_ms_per_gib"], cmd


def pattern(arr, seed):
    """A cheap per-run pattern: every 8-byte word of each segment."""
    v = arr.view(numpy.uint64)
    v[:] = numpy.arange(len(v), dtype=numpy.uint64) * 0x9E3779B97F4A7C15 ^ seed


def py_populate(a, c, region, keys):
    arr = numpy.frombuffer(region, dtype=numpy.uint8)
    pattern(arr, 7)
    seg = a.segment
    futs = []
    for b in range(0, len(keys), a.entries):
        ents = [kvswap.Entry(keys[i], [(i * a.layers + l) * seg
                                       for l in range(a.layers)], seg)
                for i in range(b, min(b + a.entries, len(keys)))]
        futs.append(c.swap_out(region, ents, cache=True))
    for f in futs:
        f.result()
        f.close()
    return arr.copy()


def py_run(a, c, region, keys, expect, run):
    """One timed swap-in of every key into the region (numpy view)."""
    arr = numpy.frombuffer(region, dtype=numpy.uint8)
    arr[:] = 0
    seg = a.segment
    # The batches' entries are built before the clock starts, as
    # kvswapctl bench builds its slots before.
    batches = []
    for b in range(0, len(keys), a.entries):
        batches.append([kvswap.Entry(keys[i], [(i * a.layers + l) * seg
                                               for l in range(a.layers)], seg)
                        for i in range(b, min(b + a.entries, len(keys)))])
    # kvswapctl bench reads N consecutive keys from a random start per
    # request; here each batch of N consecutive keys once, in random order.
    random.Random(run).shuffle(batches)
    # DEPTH batches in flight, each replaced as soon as it ends (any
    # order), as kvswapctl bench keeps its slots busy.
    inflight = []
    todo = iter(batches)
    left = len(batches)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for ents in todo:
        inflight.append(c.swap_in(region, ents))
        if len(inflight) == a.depth:
            break
    while left:
        for f in c.wait_any(inflight):
            f.result()
            f.close()
            left -= 1
            inflight.remove(f)
            ents = next(todo, None)
            if ents is not None:
                inflight.append(c.swap_in(region, ents))
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if not numpy.array_equal(arr, expect):
        raise SystemExit("python swap-in: bytes differ from those stored")
    return a.total / dt, cpu * 1e3 / (a.total / (1 << 30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total", type=size, default=1 << 30)
    ap.add_argument("--segment", type=size, default=64 << 10)
    ap.add_argument("--entries", type=int, default=8)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--store-size", default="4G")
    ap.add_argument("--out", default=os.path.join(BUILD, "bench",
                                                  "python-swapin.json"))
    a = ap.parse_args()
    per_key = a.segment * a.layers
    if a.total % per_key:
        raise SystemExit("--total must be a multiple of segment x layers")
    nkeys = a.total // per_key
    d = start_daemon(a.store_size)
    try:
        c = kvswap.Client(d.socket)
        region = c.region(a.total)
        keys = [b"py-%08d" % i for i in range(nkeys)]
        expect = py_populate(a, c, region, keys)
        cs, ps, cmd = [], [], None
        ccpus, pcpus = [], []
        for r in range(a.runs):
            # Which goes first alternates too: no order effect.
            if r % 2:
                pt, pcpu = py_run(a, c, region, keys, expect, r)
                ct, ccpu, cmd = c_run(a, d.socket)
            else:
                ct, ccpu, cmd = c_run(a, d.socket)
                pt, pcpu = py_run(a, c, region, keys, expect, r)
            cs.append(ct)
            ps.append(pt)
            ccpus.append(ccpu)
            pcpus.append(pcpu)
            print("run %d: C %.0f MB/s, Python %.0f MB/s, ratio %.3f; client "
                  "CPU ms/GiB: C %.0f, Python %.0f" % (
                      r + 1, ct / 1e6, pt / 1e6, pt / ct, ccpu, pcpu),
                  flush=True)
        del expect
        region.close()
        c.close()
    finally:
        st = d.stop()
        d.cleanup()
    ratio = statistics.median(ps) / statistics.median(cs)
    res = {
        "machine": "%s, %d CPUs, %s" % (platform.node(), os.cpu_count(),
                                        platform.python_version()),
        "python": sys.executable, "library": kvswap.library_path(),
        "total_bytes": a.total, "segment": a.segment, "entries": a.entries,
        "layers": a.layers, "depth": a.depth, "c_command": " ".join(cmd),
        "c_bytes_per_s": cs, "python_bytes_per_s": ps,
        "c_client_cpu_ms_per_gib": ccpus,
        "python_client_cpu_ms_per_gib": pcpus,
        "c_median": statistics.median(cs), "python_median":
        statistics.median(ps), "ratio": ratio, "kvswapd_exit": st,
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("median: C %.0f MB/s, Python %.0f MB/s: Python / C = %.3f "
          "(target >= 0.9: %s); client CPU ms/GiB: C %.0f, Python %.0f; %s"
          % (res["c_median"] / 1e6, res["python_median"] / 1e6, ratio,
             "met" if ratio >= 0.9 else "NOT met", statistics.median(ccpus),
             statistics.median(pcpus), a.out))
    return 0 if st == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
