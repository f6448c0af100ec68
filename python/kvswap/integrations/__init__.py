# SPDX-License-Identifier: MIT
"""kvswap inside inference servers: one adapter per framework interface.

- ``kvswap.integrations.sglang``: an SGLang HiCache storage backend
  (zero-copy ``batch_get_v1``/``batch_set_v1``, prefix ``batch_exists``)
  and a HostTensorAllocator that puts SGLang's host KV pool in a kvswap
  region.
- ``kvswap.integrations.lmcache``: a native second-tier ("native_plugin")
  client for LMCache's multi-process server.
- ``kvswap.integrations.vllm``: a vLLM offloading backend (manager for the
  scheduler, handler for the worker, and the spec that makes both).

None of them imports its framework when imported; the classes that must
inherit from a framework's base class are made on first use, inside that
framework. Each module's docstring says how to enable it.
docs/PYTHON-INTEGRATIONS.md has the call sequences.
"""
import threading

from ..client import Client

_lock = threading.Lock()
_clients = {}


def shared_client(socket=None):
    """One kvswap.Client per socket per process, shared by the adapters.

    A region belongs to the connection that registered it, so an
    allocator that makes a framework's host pool a region and the storage
    backend that swaps that pool must use the same Client: both take it
    from here.
    """
    with _lock:
        c = _clients.get(socket)
        if c is None or not c._k:
            c = _clients[socket] = Client(socket)
        return c


def region_at(address, clients=None):
    """The kvswap Region (of a shared client) holding ``address``, or None."""
    with _lock:
        cs = list(_clients.values()) if clients is None else list(clients)
    for c in cs:
        for r in list(c._regions):
            if r._handle is not None and r.address <= address < \
                    r.address + r.nbytes:
                return r
    return None
