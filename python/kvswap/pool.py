# SPDX-License-Identifier: MIT
"""A paged KV cache laid out inside one kvswap region, and a host-pool allocator.

Inference servers keep their host KV pool in ordinary memory or /dev/shm
files, which kvswapd cannot take (it needs a sealed memfd). Both helpers
here allocate the pool *in* a kvswap Region instead, so that kvswapd
reads and writes the pool's own pages: no bounce copy.
"""
from .client import Entry

_ITEMSIZE = {"float16": 2, "half": 2, "bfloat16": 2, "float32": 4,
             "float": 4, "float64": 8, "int8": 1, "uint8": 1,
             "float8_e4m3fn": 1, "float8_e5m2": 1}


def _dtype_name(dtype):
    if isinstance(dtype, str):
        return dtype
    s = str(dtype)                       # torch.float16, float16 (numpy)
    return s[len("torch."):] if s.startswith("torch.") else s


def _itemsize(dtype):
    name = _dtype_name(dtype)
    if name in _ITEMSIZE:
        return _ITEMSIZE[name]
    raise ValueError("unknown dtype %r" % (dtype,))


def _torch_dtype(dtype):
    import torch
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, _dtype_name(dtype))


class KVPool:
    """layers x blocks x (K, V) x block_tokens x heads x head_dim of dtype, in
    one Region.

    Layer-major: block b of layer l is ``block_bytes`` bytes at
    ``offset(l, b) = (l * blocks + b) * stride``, where ``stride`` is
    block_bytes rounded up to the daemon's alignment (4096). Stored
    under one key per block, an entry has a segment per layer (segment l
    is layer l) in completion group ``l // layers_per_group``; so a
    swap-in's ``wait(group_of(l))`` says when layer l of every block of
    the batch has landed.
    """

    def __init__(self, client, layers, blocks, heads, head_dim,
                 dtype="float16", block_tokens=16, layers_per_group=1,
                 hugepages=False):
        if min(layers, blocks, heads, head_dim, block_tokens,
               layers_per_group) < 1:
            raise ValueError("every dimension must be at least 1")
        self.client = client
        self.layers = layers
        self.blocks = blocks
        self.heads = heads
        self.head_dim = head_dim
        self.block_tokens = block_tokens
        self.dtype = dtype
        self.itemsize = _itemsize(dtype)
        self.layers_per_group = layers_per_group
        self.groups = (layers + layers_per_group - 1) // layers_per_group
        self.block_bytes = 2 * block_tokens * heads * head_dim * self.itemsize
        a = client.alignment
        self.stride = (self.block_bytes + a - 1) // a * a
        self.nbytes = layers * blocks * self.stride
        self.region = client.region(self.nbytes, hugepages=hugepages)

    def offset(self, layer, block):
        """Where block ``block`` of layer ``layer`` starts in the region."""
        if not (0 <= layer < self.layers and 0 <= block < self.blocks):
            raise IndexError("layer %d block %d out of %d x %d" % (
                layer, block, self.layers, self.blocks))
        return (layer * self.blocks + block) * self.stride

    def group_of(self, layer):
        """The completion group of ``layer``."""
        return layer // self.layers_per_group

    def layers_of(self, group):
        """The layers of completion group ``group``."""
        lo = group * self.layers_per_group
        return range(lo, min(lo + self.layers_per_group, self.layers))

    def entries(self, keys, block_ids, layers=None):
        """One Entry per (key, block): a segment per layer of ``layers``
        (default all) at that layer's copy of the block, grouped by layer
        group. Swap-ins name stored segments by layer number, so a
        subset of layers reads only those."""
        keys = list(keys)
        block_ids = list(block_ids)
        if len(keys) != len(block_ids):
            raise ValueError("%d keys for %d blocks" % (len(keys),
                                                        len(block_ids)))
        ls = list(range(self.layers)) if layers is None else list(layers)
        groups = [self.group_of(l) for l in ls]
        idx = None if layers is None else ls
        out = []
        for k, b in zip(keys, block_ids):
            offs = [self.offset(l, b) for l in ls]
            out.append(Entry(k, offs, self.block_bytes, groups, idx))
        return out

    def swap_out(self, keys, block_ids, **kw):
        """Stores each block under its key (Client.swap_out's options)."""
        return self.client.swap_out(self.region, self.entries(keys, block_ids),
                                    **kw)

    def swap_in(self, keys, block_ids, layers=None, **kw):
        """Reads each key into its block (Client.swap_in's options)."""
        ents = self.entries(keys, block_ids, layers)
        return self.client.swap_in(self.region, ents, **kw)

    def _shape(self):
        return (self.blocks, 2, self.block_tokens, self.heads, self.head_dim)

    def _strides(self):
        inner = 2 * self.block_tokens * self.heads * self.head_dim
        step = self.stride // self.itemsize
        return (step, inner // 2, self.heads * self.head_dim, self.head_dim,
                1), step * self.blocks

    def tensor(self):
        """The whole pool as a torch tensor
        [layers, blocks, 2, block_tokens, heads, head_dim] (zero-copy)."""
        import torch
        t = torch.frombuffer(self.region, dtype=torch.uint8)
        t = t.view(_torch_dtype(self.dtype))
        st, lstep = self._strides()
        return t.as_strided((self.layers,) + self._shape(), (lstep,) + st)

    def layer(self, layer):
        """Layer ``layer`` as a torch tensor
        [blocks, 2, block_tokens, heads, head_dim] (zero-copy)."""
        return self.tensor()[layer]

    def layer_numpy(self, layer):
        """Layer ``layer`` as a numpy array (zero-copy; no bfloat16)."""
        import numpy
        from numpy.lib.stride_tricks import as_strided
        a = numpy.frombuffer(self.region, dtype=_dtype_name(self.dtype))
        st, lstep = self._strides()
        base = a[self.offset(layer, 0) // self.itemsize:]
        return as_strided(base, self._shape(),
                          tuple(s * self.itemsize for s in st))

    def close(self):
        self.region.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HostTensorAllocator:
    """SGLang's HostTensorAllocator hook: the host KV pool in kvswap regions.

    ``allocate(dims, dtype, device)`` returns a CPU torch tensor backed by a
    new Region of the client (one per call); ``region_of(tensor)`` and
    ``offset_of(tensor)`` give the Region and byte offset where a view of
    it lives, which is what a swap needs. Like SGLang's own allocators it
    records the last ``dims`` and ``dtype``.
    """

    def __init__(self, client, hugepages=False):
        self.client = client
        self.hugepages = hugepages
        self.regions = []
        self.dims = None
        self.dtype = None

    def allocate(self, dims, dtype, device="cpu"):
        import torch
        if str(device) != "cpu":
            raise ValueError("kvswap regions are host memory; device %r"
                             % (device,))
        n = 1
        for d in dims:
            n *= int(d)
        item = torch.empty((), dtype=dtype).element_size()
        reg = self.client.region(max(1, n * item), hugepages=self.hugepages)
        self.regions.append(reg)
        self.dims, self.dtype = tuple(dims), dtype
        t = torch.frombuffer(reg, dtype=torch.uint8)[:n * item]
        return t.view(dtype).view(tuple(dims))

    def region_of(self, tensor):
        """The Region that holds ``tensor``'s first byte."""
        p = tensor.data_ptr()
        for r in self.regions:
            if r.address <= p < r.address + r.nbytes:
                return r
        raise ValueError("the tensor is not in a region of this allocator")

    def offset_of(self, tensor):
        """``tensor``'s byte offset in its Region."""
        return tensor.data_ptr() - self.region_of(tensor).address

    def close(self):
        for r in self.regions:
            r.close()
        self.regions = []
