# SPDX-License-Identifier: MIT
"""python3 -m kvswap [--socket PATH] stat|ls|describe KEY|lookup KEY...|rm KEY..."""
import argparse
import json
import sys

from . import Client, KvswapError


def _key(s):
    return s.encode()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m kvswap",
                                 description="Ask kvswapd through libkvswap.")
    ap.add_argument("--socket", help="kvswapd's socket (default: "
                    "$KVSWAP_SOCKET, else /run/kvswap/kvswapd.sock)")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("stat", help="the daemon's statistics")
    sub.add_parser("ls", help="every stored entry")
    d = sub.add_parser("describe", help="one entry's layout")
    d.add_argument("key")
    lk = sub.add_parser("lookup", help="the stored prefix of KEYS")
    lk.add_argument("keys", nargs="+")
    rm = sub.add_parser("rm", help="delete KEYS")
    rm.add_argument("keys", nargs="+")
    a = ap.parse_args(argv)
    try:
        with Client(a.socket) as c:
            if a.cmd == "stat":
                out = dict(c.stat(), daemon=c.limits["daemon"])
            elif a.cmd == "ls":
                out = [dict(e, key=e["key"].decode(errors="replace"))
                       for e in c.list()]
            elif a.cmd == "describe":
                e = c.describe(_key(a.key))
                out = dict(e, key=e["key"].decode(errors="replace"),
                           metadata=e["metadata"].hex())
            elif a.cmd == "lookup":
                out = {"prefix": c.lookup([_key(k) for k in a.keys])}
            else:
                out = {"deleted": c.delete([_key(k) for k in a.keys])}
    except KvswapError as e:
        print("kvswap: %s" % e, file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(out))
    elif isinstance(out, list):
        for e in out:
            print("%s\t%d\t%d" % (e["key"], e["size"], e["segments"]))
    else:
        w = max(len(k) for k in out)
        for k, v in out.items():
            print("%-*s %s" % (w, k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
