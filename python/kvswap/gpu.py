# SPDX-License-Identifier: MIT
"""The GPU path: a Region pinned for DMA, and a layer-wise loader.

``pin(region)`` page-locks a Region and registers it with CUDA
(``cudaHostRegister``, through ``torch.cuda.cudart()`` or, failing that,
the CUDA runtime library by ctypes), so that ``copy_(non_blocking=True)``
from it to the GPU is a real asynchronous DMA. ``unpin``/``close()``
undoes it; it must happen before the Region is closed.

``LayerwiseLoader(pool, device_layers)`` moves a KVPool's blocks to
per-layer device tensors as a swap-in lands: a thread waits for each
completion group in turn (``Future.wait(group)``, GIL released) and, as
soon as one has landed, issues ``copy_(non_blocking=True)`` of that
group's layers' blocks on its own CUDA stream and records an event. The
model's layer i calls ``load.wait_layer(i)``: it waits for group i's
copies to be *issued* and makes the current stream wait for their event,
so layer i waits only for its own data, on the GPU, and never for later
layers'. With ``device="cpu"`` (no GPU) the copies are plain copies and
the same calls work: tests and the bench's CPU mode use that.

No import of torch until a function here is called.
"""
import ctypes
import ctypes.util
import threading

from .errors import KvswapError

_CUDA_HOST_REGISTER_DEFAULT = 0
_CUDA_HOST_REGISTER_PORTABLE = 1


def available():
    """True when torch is importable and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _cudart_ctypes():
    import os
    names = ["cudart"]
    for n in names:
        p = ctypes.util.find_library(n)
        if p:
            return ctypes.CDLL(p)
    try:
        import torch
        d = os.path.join(os.path.dirname(torch.__file__), "lib")
        for f in sorted(os.listdir(d)):
            if f.startswith("libcudart.so"):
                return ctypes.CDLL(os.path.join(d, f))
    except (ImportError, OSError):
        pass
    for f in ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0"):
        try:
            return ctypes.CDLL(f)
        except OSError:
            continue
    raise OSError("libcudart not found (torch.cuda.cudart() lacks "
                  "cudaHostRegister too)")


class Pinned:
    """A Region (or any address range) registered with CUDA; close() undoes it."""

    def __init__(self, address, nbytes, portable=True):
        self.address, self.nbytes = address, nbytes
        flags = _CUDA_HOST_REGISTER_PORTABLE if portable else \
            _CUDA_HOST_REGISTER_DEFAULT
        self._rt, self._via = self._runtime()
        err = self._call("cudaHostRegister", address, nbytes, flags)
        if err != 0:
            raise KvswapError(12, "cudaHostRegister(%#x, %d) failed: CUDA "
                              "error %d (via %s)" % (address, nbytes, err,
                                                     self._via), "pin")
        self.pinned = True

    @staticmethod
    def _runtime():
        try:
            import torch
            rt = torch.cuda.cudart()
            if hasattr(rt, "cudaHostRegister"):
                return rt, "torch.cuda.cudart()"
        except Exception:
            pass
        lib = _cudart_ctypes()
        lib.cudaHostRegister.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                                         ctypes.c_uint]
        lib.cudaHostRegister.restype = ctypes.c_int
        lib.cudaHostUnregister.argtypes = [ctypes.c_void_p]
        lib.cudaHostUnregister.restype = ctypes.c_int
        return lib, "libcudart (ctypes)"

    def _call(self, name, *args):
        r = getattr(self._rt, name)(*args)
        # torch's binding returns a cudaError enum, ctypes an int.
        return int(getattr(r, "value", r))

    def close(self):
        if getattr(self, "pinned", False):
            self.pinned = False
            err = self._call("cudaHostUnregister", self.address)
            if err != 0:
                raise KvswapError(22, "cudaHostUnregister(%#x) failed: CUDA "
                                  "error %d" % (self.address, err), "unpin")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pin(region, portable=True):
    """Page-locks ``region`` (a kvswap.Region) for DMA; returns a Pinned."""
    if not available():
        raise KvswapError(19, "no CUDA device (torch.cuda.is_available() is "
                          "False)", "pin")
    return Pinned(region.address, region.nbytes, portable)


class LayerLoad:
    """One swap-in on its way to the device; see LayerwiseLoader.load()."""

    def __init__(self, loader, fut, host_blocks, dev_blocks):
        self.loader = loader
        self.fut = fut
        self.host_blocks = list(host_blocks)
        self.dev_blocks = list(dev_blocks)
        n = loader.pool.groups
        self.ready = [threading.Event() for _ in range(n)]
        self.events = [None] * n
        self.error = None
        self.issued_at = [None] * n
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="kvswap-layerwise")
        self.thread.start()

    def _run(self):
        import time
        ld = self.loader
        torch = ld.torch
        try:
            for g in range(ld.pool.groups):
                self.fut.wait(g)
                if ld.stream is not None:
                    with torch.cuda.stream(ld.stream):
                        ld._copy_group(g, self.host_blocks, self.dev_blocks)
                        ev = torch.cuda.Event()
                        ev.record(ld.stream)
                    self.events[g] = ev
                else:
                    ld._copy_group(g, self.host_blocks, self.dev_blocks)
                self.issued_at[g] = time.monotonic()
                self.ready[g].set()
        except BaseException as e:           # handed to wait_layer()
            self.error = e
            for r in self.ready:
                r.set()

    def wait_layer(self, layer):
        """Returns layer ``layer``'s device tensor once its blocks are there
        (for the current CUDA stream: it waits on the copy's event)."""
        g = self.loader.pool.group_of(layer)
        self.ready[g].wait()
        if self.error is not None:
            raise self.error
        ev = self.events[g]
        if ev is not None:
            self.loader.torch.cuda.current_stream().wait_event(ev)
        return self.loader.device_layers[layer]

    def result(self):
        """Waits for the copies and the batch; returns the batch's statuses."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        for ev in self.events:
            if ev is not None:
                ev.synchronize()
        return self.fut.result()


class LayerwiseLoader:
    """Copies a KVPool's blocks to per-layer device tensors, group by group.

    ``device_layers[l]``: layer l's device KV tensor, shaped like
    ``pool.layer(l)`` in everything but the number of blocks:
    [device_blocks, 2, block_tokens, heads, head_dim]. Pin the pool's
    region (``pin(pool.region)``) for the copies to be asynchronous.
    """

    def __init__(self, pool, device_layers, stream=None):
        import torch
        self.torch = torch
        self.pool = pool
        self.device_layers = list(device_layers)
        if len(self.device_layers) != pool.layers:
            raise ValueError("%d device layers for a pool of %d" % (
                len(self.device_layers), pool.layers))
        dev = self.device_layers[0].device
        self.cuda = dev.type == "cuda"
        self.stream = (stream or torch.cuda.Stream(device=dev)) \
            if self.cuda else None
        self._host = [pool.layer(l) for l in range(pool.layers)]

    def _copy_group(self, g, host_blocks, dev_blocks):
        nb = self.cuda
        for l in self.pool.layers_of(g):
            src, dst = self._host[l], self.device_layers[l]
            for hb, db in zip(host_blocks, dev_blocks):
                dst[db].copy_(src[hb], non_blocking=nb)

    def load(self, keys, host_blocks, dev_blocks, **swap_in_options):
        """Swaps ``keys`` into the pool's ``host_blocks`` and moves each
        layer group to ``dev_blocks`` of the device layers as it lands;
        returns a LayerLoad (``wait_layer(i)``, ``result()``)."""
        fut = self.pool.swap_in(keys, host_blocks, **swap_in_options)
        return LayerLoad(self, fut, host_blocks, dev_blocks)

    def load_all(self, keys, host_blocks, dev_blocks):
        """The reference without overlap: the whole swap-in, then every
        layer's copy, then a synchronize. Returns the statuses."""
        st = self.pool.swap_in(keys, host_blocks, request_order=True).result()
        for g in range(self.pool.groups):
            self._copy_group(g, host_blocks, dev_blocks)
        if self.cuda:
            self.torch.cuda.synchronize()
        return st
