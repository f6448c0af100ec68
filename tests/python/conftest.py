# SPDX-License-Identifier: MIT
"""pytest fixtures: the real kvswapd on a private socket and a store file.

The store lives under the build folder (O_DIRECT needs a real file
system, not a tmpfs); the socket under $TMPDIR. $KVSWAPD picks the
daemon binary (make test-sanitize points it at the ASan build).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir,
                                    os.pardir))
BUILD = os.environ.get("KVSWAP_BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import kvswap  # noqa: E402


class Daemon:
    def __init__(self, store_size="256M", extra=()):
        self.binary = os.environ.get("KVSWAPD", os.path.join(BUILD, "kvswapd"))
        os.makedirs(os.path.join(BUILD, "tests"), exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="py.", dir=os.path.join(BUILD,
                                                                    "tests"))
        self.sockdir = tempfile.mkdtemp(prefix="kvswap-py.")
        self.socket = os.path.join(self.sockdir, "kvswapd.sock")
        self.log = os.path.join(self.dir, "kvswapd.log")
        self.store_size = store_size
        self.extra = list(extra)
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--socket", self.socket, "--store",
                 os.path.join(self.dir, "store0.kvs"), "--store-size",
                 self.store_size, "--log-level", "warning"] + self.extra,
                stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while True:
            try:
                kvswap.Client(self.socket).close()
                return self
            except kvswap.KvswapError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("kvswapd did not start:\n" +
                                       open(self.log).read())
                time.sleep(0.05)

    def stop(self):
        """SIGTERM; returns the exit status (a sanitizer report makes it non-zero)."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            st = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            st = self.proc.wait()
        self.proc = None
        return st

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon():
    d = Daemon().start()
    yield d
    st = d.stop()
    log = open(d.log).read()
    d.cleanup()
    assert st == 0, "kvswapd exited %d:\n%s" % (st, log)


@pytest.fixture
def client(daemon):
    c = kvswap.Client(daemon.socket)
    yield c
    c.close()
