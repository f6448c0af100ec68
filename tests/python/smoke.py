# SPDX-License-Identifier: MIT
"""The binding with the standard library only: python3 smoke.py SOCKET.

Blocks numpy and torch (an import of either fails), then connects,
swaps a few segments out and in through a memoryview of a Region,
awaits a group on asyncio and prints "smoke ok" with the version.
Any CPython 3.9+ that can load libkvswap.so.0 must pass it.
"""
import asyncio
import os
import sys

sys.modules["numpy"] = None
sys.modules["torch"] = None
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, os.pardir, "python"))

import kvswap  # noqa: E402

SEG = 1 << 16


def main(sock):
    with kvswap.Client(sock) as c:
        with c.region(4 * SEG) as r:
            mv = memoryview(r)
            mv[:SEG] = bytes(range(256)) * (SEG // 256)
            key = "smoke-%d.%d" % sys.version_info[:2]
            c.swap_out(r, [kvswap.Entry(key, [0], SEG)]).result()
            f = c.swap_in(r, [kvswap.Entry(key, [2 * SEG], SEG, [7])])

            async def wait():
                await f.wait_group(7)
                return await f
            assert asyncio.run(wait()) == [0]
            assert mv[2 * SEG:3 * SEG] == mv[:SEG]
            f.close()
            assert c.lookup([key]) == 1
            mv.release()
    print("smoke ok %d.%d" % sys.version_info[:2])


if __name__ == "__main__":
    main(sys.argv[1])
