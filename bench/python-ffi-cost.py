#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What the binding's form costs: ctypes against an abi3 extension, measured.

1. One call into libkvswap (kvswap_group_done(NULL, 0): returns at once)
   through ctypes, and through a CPython extension on the limited API
   (abi3) built here for the purpose (needs cc and Python.h; the GIL is
   released around the call in both, as the binding does).
2. The binding's Python work for a 1 GiB swap-in in 64 KiB segments in
   bench/python-swapin.py's shape (8 entries x 32 layers per batch, and
   8 entries x 1 segment, the most entries per byte): the
   Entry objects and the packed struct kvswap_batch_entry arrays of
   every batch, and the ctypes calls a batch makes (submit, wait, entry
   statuses, free), timed without a daemon.

    /usr/bin/python3 bench/python-ffi-cost.py
"""
import os
import subprocess
import sys
import sysconfig
import tempfile
import timeit

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import kvswap  # noqa: E402
from kvswap import client as kc  # noqa: E402
from kvswap._lib import lib  # noqa: E402

EXT = r"""
#define Py_LIMITED_API 0x03090000
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
struct kvswap_req;
bool kvswap_group_done(const struct kvswap_req *req, uint32_t group);

static PyObject *group_done(PyObject *self, PyObject *arg)
{
	unsigned long g = PyLong_AsUnsignedLong(arg);
	bool r;

	if (PyErr_Occurred())
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = kvswap_group_done(NULL, (uint32_t)g);
	Py_END_ALLOW_THREADS
	return PyBool_FromLong(r);
}

static PyMethodDef methods[] = {
	{ "group_done", group_done, METH_O, NULL },
	{ NULL, NULL, 0, NULL },
};
static struct PyModuleDef mod = { PyModuleDef_HEAD_INIT, "ffiprobe", NULL,
				  -1, methods };
PyMODINIT_FUNC PyInit_ffiprobe(void) { return PyModule_Create(&mod); }
"""


def per_call_ns(fn, n=500000):
    best = min(timeit.repeat(fn, number=n, repeat=5))
    return best / n * 1e9


def build_abi3(tmp):
    src = os.path.join(tmp, "ffiprobe.c")
    so = os.path.join(tmp, "ffiprobe.abi3.so")
    with open(src, "w") as f:
        f.write(EXT)
    inc = sysconfig.get_paths()["include"]
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I" + inc, "-o", so, src,
                    "-L" + BUILD, "-l:libkvswap.so.0",
                    "-Wl,-rpath," + os.path.abspath(BUILD)], check=True)
    sys.path.insert(0, tmp)
    import ffiprobe
    return ffiprobe


def main():
    seg, entries, total = 64 << 10, 8, 1 << 30
    ct = per_call_ns(lambda: lib.kvswap_group_done(None, 0))
    print("one call, ctypes:  %.0f ns" % ct)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            probe = build_abi3(tmp)
            at = per_call_ns(lambda: probe.group_done(0))
            print("one call, abi3:    %.0f ns" % at)
        except (subprocess.CalledProcessError, OSError, ImportError) as e:
            at = None
            print("abi3 probe not built: %s" % e)

    for layers in (32, 1):
        cost(ct, at, seg, layers, entries, total)


def cost(ct, at, seg, layers, entries, total):
    nkeys = total // (seg * layers)
    nbatch = nkeys // entries

    def build_all():
        for b in range(nbatch):
            ents = [kvswap.Entry(b"py-%08d" % i,
                                 [(i * layers + l) * seg
                                  for l in range(layers)], seg)
                    for i in range(b * entries, (b + 1) * entries)]
            kc._Packed(ents, False)
    t = min(timeit.repeat(build_all, number=1, repeat=5))
    # Calls per batch on the path bench/python-swapin.py takes: submit,
    # kvswap_wait, entry statuses (one per entry), req_free, and a few
    # checks.
    calls = nbatch * (entries + 6)
    print("%d entries x %d layers per batch: building %d batches (%d "
          "entries, %d segments) %.1f ms per GiB; about %d calls per GiB: "
          "%.2f ms per GiB with ctypes%s" % (
              entries, layers, nbatch, nkeys, nkeys * layers, t * 1e3, calls,
              calls * ct / 1e6, ", %.2f ms with abi3" % (calls * at / 1e6)
              if at else ""))

if __name__ == "__main__":
    main()
