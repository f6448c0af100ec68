# SPDX-License-Identifier: MIT
"""The binding without numpy or torch, in this and in other interpreters.

$KVSWAP_TEST_PYTHONS (space separated) names more interpreters to run
tests/python/smoke.py under, e.g. other CPython versions.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
OTHERS = os.environ.get("KVSWAP_TEST_PYTHONS", "").split()


def smoke(py, daemon):
    p = subprocess.run([py, os.path.join(HERE, "smoke.py"), daemon.socket],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout
    assert "smoke ok" in p.stdout


def test_stdlib_only(daemon):
    smoke(sys.executable, daemon)


@pytest.mark.parametrize("py", OTHERS or [None])
def test_other_interpreters(daemon, py):
    if py is None:
        pytest.skip("no other interpreters named ($KVSWAP_TEST_PYTHONS)")
    smoke(py, daemon)
