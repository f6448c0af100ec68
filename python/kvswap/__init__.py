# SPDX-License-Identifier: MIT
"""kvswap: Python binding of libkvswap, the client of kvswapd.

kvswapd swaps LLM KV-cache segments between this process's memory regions
and NVMe. Quick start::

    import kvswap, numpy
    c = kvswap.Client()                       # $KVSWAP_SOCKET or the default
    r = c.region(1 << 20)                     # a sealed memfd, registered
    a = numpy.frombuffer(r, dtype=numpy.float16)   # zero-copy view
    c.swap_out(r, [kvswap.Entry(b"k", [0, 65536], 65536)]).result()
    c.swap_in(r, [kvswap.Entry(b"k", [131072, 196608], 65536)]).result()

libkvswap.so.0 is found through $KVSWAP_LIBRARY, next to this package,
in the source tree's build/ ($KVSWAP_BUILD), or on the linker's path.
See docs/PYTHON.md.
"""
from ._lib import lib as _library
from .client import SKIPPED, Client, Entry, Future, Region
from .errors import (BatchError, Cancelled, ChecksumError, Disconnected,
                     KvswapError, NoSpace, NotFound, Timeout)
from .pool import HostTensorAllocator, KVPool

__all__ = [
    "Client", "Region", "Entry", "Future", "SKIPPED", "KVPool",
    "HostTensorAllocator", "KvswapError", "NotFound", "Timeout",
    "Disconnected", "NoSpace", "Cancelled", "ChecksumError", "BatchError",
    "library_path",
]


def library_path():
    """The path of the libkvswap that was loaded."""
    return _library.kvswap_path
