# SPDX-License-Identifier: MIT
"""asyncio: await fut.wait_group(i) and await fut, driven by client.fileno()."""
import asyncio

import numpy
import pytest

import kvswap

SEG = 64 << 10
LAYERS = 8


def test_await_groups_in_order(client):
    r = client.region(2 * 16 * LAYERS * SEG)
    src = numpy.frombuffer(r, dtype=numpy.uint8)
    src[:] = numpy.random.default_rng(5).integers(0, 256, len(src),
                                                  dtype=numpy.uint8)
    half = 16 * LAYERS * SEG
    keys = ["aio-%d" % i for i in range(16)]
    client.swap_out(r, [kvswap.Entry(k, [(i * LAYERS + l) * SEG
                                         for l in range(LAYERS)], SEG)
                        for i, k in enumerate(keys)]).result()
    ents = [kvswap.Entry(k, [half + (i * LAYERS + l) * SEG
                             for l in range(LAYERS)], SEG)
            for i, k in enumerate(keys)]
    seen = []

    async def main():
        f1 = client.swap_in(r, ents[:8])
        f2 = client.swap_in(r, ents[8:])

        async def layers(f, name):
            for g in range(LAYERS):
                await f.wait_group(g)
                assert f.group_done(g)
                seen.append((name, g))
            return await f
        return await asyncio.gather(layers(f1, "a"), layers(f2, "b"))

    res = asyncio.run(main())
    assert res == [[0] * 8, [0] * 8]
    assert sorted(seen) == sorted([(n, g) for n in "ab" for g in range(LAYERS)])
    assert (src[half:] == src[:half]).all()
    del src
    r.close()


def test_await_failed_group_raises(client):
    r = client.region(4 * SEG)

    async def main():
        f = client.swap_in(r, [("aio-missing", [0], SEG)])
        with pytest.raises(kvswap.NotFound):
            await f.wait_group(0)
        with pytest.raises(kvswap.BatchError):
            await f
    asyncio.run(main())
    r.close()


def test_driver_per_loop_and_sync_waits_mixed(client):
    """Events a blocking call reads still wake the coroutines waiting."""
    r = client.region(8 * SEG)
    client.swap_out(r, [("mix-%d" % i, [i * SEG], SEG) for i in range(4)]
                    ).result()

    async def main():
        f = client.swap_in(r, [("mix-%d" % i, [(4 + i) * SEG], SEG, [i])
                               for i in range(4)])
        g = client.swap_in(r, [("mix-0", [4 * SEG], SEG)])
        waiter = asyncio.ensure_future(f.wait_group(3))
        await asyncio.sleep(0)
        g.result()                  # blocks; may read f's events too
        f.result()
        await asyncio.wait_for(waiter, 30)
        f.close()
        g.close()
    for _ in range(3):
        asyncio.run(main())
    assert len(client._drivers) == 1
    r.close()
