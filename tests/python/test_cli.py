# SPDX-License-Identifier: MIT
"""python3 -m kvswap against the daemon."""
import json
import os
import subprocess
import sys


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir,
                                    os.pardir))


def run(daemon, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    return subprocess.run([sys.executable, "-m", "kvswap", "--socket",
                           daemon.socket] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def test_stat_ls_describe(daemon, client):
    with client.region(4096) as r:
        client.swap_out(r, [("cli-key", [0], 4096)]).result()
    p = run(daemon, "stat")
    assert p.returncode == 0, p.stderr
    assert "capacity" in p.stdout and "kvswapd" in p.stdout
    p = run(daemon, "--json", "stat")
    assert json.loads(p.stdout)["entries"] >= 1
    p = run(daemon, "ls")
    assert "cli-key\t4096\t1" in p.stdout.splitlines()
    p = run(daemon, "--json", "describe", "cli-key")
    assert json.loads(p.stdout)["lengths"] == [4096]
    p = run(daemon, "describe", "cli-nokey")
    assert p.returncode == 1 and "no such entry" in p.stderr
