# SPDX-License-Identifier: MIT
"""The KV pool helper and the host tensor allocator, with torch views."""
import numpy
import pytest
import torch

import kvswap


@pytest.mark.parametrize("dtype,heads,head_dim,bt", [
    (torch.float16, 4, 64, 16),      # 16 KiB blocks: no padding
    (torch.bfloat16, 3, 20, 4),      # 960-byte blocks padded to 4096
    (torch.float32, 2, 32, 8),
])
def test_pool_blocks_roundtrip_layer_by_layer(client, dtype, heads, head_dim, bt):
    layers, blocks = 6, 10
    with kvswap.KVPool(client, layers, blocks, heads, head_dim, dtype=dtype,
                       block_tokens=bt, layers_per_group=2) as pool:
        assert pool.groups == 3 and pool.stride % 4096 == 0
        full = pool.tensor()
        assert full.shape == (layers, blocks, 2, bt, heads, head_dim)
        assert full.data_ptr() == pool.region.address
        g = torch.Generator().manual_seed(3)
        for l in range(layers):
            pool.layer(l).copy_(torch.randn(pool.layer(l).shape, generator=g)
                                .to(dtype))
        want = full.clone()
        keys = ["pool-%s-%d" % (dtype, b) for b in (1, 4, 7)]
        pool.swap_out(keys, [1, 4, 7]).result()
        full.zero_()
        f = pool.swap_in(keys, [2, 5, 9])
        for grp in range(pool.groups):
            f.wait(grp)
            for l in pool.layers_of(grp):
                for src, dst in ((1, 2), (4, 5), (7, 9)):
                    assert torch.equal(pool.layer(l)[dst], want[l, src])
        f.result()
        assert torch.count_nonzero(full[:, [0, 1, 3, 4, 6, 7, 8]]) == 0
        # Only some layers: the stored segments are named by layer.
        full.zero_()
        pool.swap_in(keys[:1], [0], layers=[3, 5]).result()
        assert torch.equal(full[3, 0], want[3, 1])
        assert torch.equal(full[5, 0], want[5, 1])
        assert torch.count_nonzero(full[4]) == 0
        if dtype != torch.bfloat16:
            assert numpy.array_equal(pool.layer_numpy(3),
                                     full[3].numpy())
        del full, f


def test_host_tensor_allocator(client):
    alloc = kvswap.HostTensorAllocator(client)
    t = alloc.allocate((2, 16, 4096), torch.float16, "cpu")
    assert alloc.dims == (2, 16, 4096) and alloc.dtype == torch.float16
    assert t.shape == (2, 16, 4096) and t.dtype == torch.float16
    reg = alloc.region_of(t)
    assert isinstance(reg, kvswap.Region)
    t.copy_(torch.arange(t.numel(), dtype=torch.float32).view(t.shape)
            .to(torch.float16))
    page = t[0, 3]                                   # 8 KiB, one page
    off = alloc.offset_of(page)
    assert off == 3 * 8192
    client.swap_out(reg, [("hta", [off], 8192)]).result()
    dst = t[1, 5]
    client.swap_in(reg, [("hta", [alloc.offset_of(dst)], 8192)]).result()
    assert torch.equal(t[1, 5], t[0, 3])
    with pytest.raises(ValueError):
        alloc.allocate((4,), torch.float16, "cuda")
    with pytest.raises(ValueError):
        alloc.offset_of(torch.zeros(4))
    del t, page, dst
    alloc.close()
