# SPDX-License-Identifier: MIT
"""ctypes declarations of libkvswap (client/kvswap.h), and where it is found.

Internal: the public API is kvswap.Client and friends. Every prototype
here mirrors client/kvswap.h; ctypes.CDLL releases the GIL around each
foreign call, so a blocking libkvswap call never holds up other threads.
"""
import ctypes
import ctypes.util
import os

c_u32 = ctypes.c_uint32
c_u64 = ctypes.c_uint64
c_int = ctypes.c_int
c_size = ctypes.c_size_t
c_vp = ctypes.c_void_p
c_bool = ctypes.c_bool
c_char_p = ctypes.c_char_p

DURABLE = 0x1
CACHE = 0x2
PINNED = 0x4
IF_ABSENT = 0x8
WAIT_LEASES = 0x10
SEGMENT_EVENTS = 0x100
NO_VERIFY = 0x200
REQUEST_ORDER = 0x400
SKIPPED = 1
REGION_HUGEPAGES = 0x1


class Limits(ctypes.Structure):
    _fields_ = [
        ("version", c_u32), ("max_message_size", c_u32),
        ("max_key_length", c_u32), ("max_metadata_length", c_u32),
        ("max_segments", c_u32), ("max_regions", c_u32),
        ("max_lookup_keys", c_u32), ("alignment", c_u32),
        ("block_size", c_u32), ("store_files", c_u32),
        ("capacity", c_u64), ("daemon", ctypes.c_char * 64),
    ]


class BatchLimits(ctypes.Structure):
    _fields_ = [("max_entries", c_u32), ("max_segments", c_u32),
                ("max_groups", c_u32)]


class Stat(ctypes.Structure):
    _fields_ = [
        ("capacity", c_u64), ("used", c_u64), ("entries", c_u64),
        ("bytes_in", c_u64), ("bytes_out", c_u64), ("requests", c_u64),
        ("errors", c_u64), ("in_flight", c_u32), ("clients", c_u32),
        ("regions", c_u32), ("store_files", c_u32), ("queue_depth", c_u32),
        ("cpu_user_us", c_u64), ("cpu_system_us", c_u64),
        ("uptime_ms", c_u64), ("evictions", c_u64), ("pinned", c_u64),
        ("journal_commits", c_u64), ("checkpoints", c_u64),
        ("checksum_errors", c_u64), ("io_errors", c_u64),
        ("durable", c_bool), ("verify", c_bool),
        ("log_half_bytes", c_u64), ("log_bytes_used", c_u64),
        ("checkpoint_bytes", c_u64), ("checkpoint_limit", c_u64),
        ("metadata_refusals", c_u64),
    ]


class BatchEntry(ctypes.Structure):
    _fields_ = [
        ("key", c_vp), ("key_len", c_size), ("nseg", c_u32),
        ("offsets", c_vp), ("lengths", c_vp), ("length", c_u64),
        ("indexes", c_vp), ("groups", c_vp), ("metadata", c_vp),
        ("metadata_len", c_size),
    ]


class EntryInfo(ctypes.Structure):
    _fields_ = [
        ("key", c_vp), ("key_len", c_size), ("size", c_u64),
        ("segments", c_u32), ("lengths", ctypes.POINTER(c_u64)),
        ("metadata", c_vp), ("metadata_len", c_size),
    ]


P = ctypes.POINTER
_PROTOS = {
    "kvswap_connect": (c_int, [c_char_p, P(c_vp)]),
    "kvswap_close": (None, [c_vp]),
    "kvswap_limits": (P(Limits), [c_vp]),
    "kvswap_fd": (c_int, [c_vp]),
    "kvswap_process": (c_int, [c_vp, c_int]),
    "kvswap_last_error": (c_char_p, [c_vp]),
    "kvswap_region_import": (c_int, [c_vp, c_int, c_vp, c_size, P(c_vp)]),
    "kvswap_region_release": (c_int, [c_vp, c_vp]),
    "kvswap_region_id": (c_u32, [c_vp]),
    "kvswap_wait": (c_int, [c_vp, c_vp, c_int]),
    "kvswap_wait_segment": (c_int, [c_vp, c_vp, c_int, P(c_u32)]),
    "kvswap_req_done": (c_bool, [c_vp]),
    "kvswap_req_status": (c_int, [c_vp]),
    "kvswap_req_segments_done": (c_u32, [c_vp]),
    "kvswap_req_segments": (c_u32, [c_vp]),
    "kvswap_req_free": (None, [c_vp]),
    "kvswap_swap_out_batch": (c_int, [c_vp, c_vp, c_vp, c_u32, c_u32, P(c_vp)]),
    "kvswap_swap_in_batch": (c_int, [c_vp, c_vp, c_vp, c_u32, c_u32, P(c_vp)]),
    "kvswap_wait_group": (c_int, [c_vp, c_vp, c_u32, c_int]),
    "kvswap_group_done": (c_bool, [c_vp, c_u32]),
    "kvswap_cancel": (c_int, [c_vp, c_vp]),
    "kvswap_req_entries": (c_u32, [c_vp]),
    "kvswap_req_entry_status": (c_int, [c_vp, c_u32]),
    "kvswap_req_entry_error": (c_char_p, [c_vp, c_u32]),
    "kvswap_req_entry_metadata": (c_vp, [c_vp, c_u32, P(c_size)]),
    "kvswap_req_cancelled": (c_bool, [c_vp]),
    "kvswap_batch_limits": (c_int, [c_vp, P(BatchLimits)]),
    "kvswap_lookup_lease": (c_int, [c_vp, c_vp, c_vp, c_u32, c_u32, c_vp]),
    "kvswap_describe": (c_int, [c_vp, c_vp, c_size, P(EntryInfo)]),
    "kvswap_entry_clear": (None, [P(EntryInfo)]),
    "kvswap_delete": (c_int, [c_vp, c_vp, c_size]),
    "kvswap_delete_keys": (c_int, [c_vp, c_vp, c_vp, c_u32, c_vp]),
    "kvswap_list": (c_int, [c_vp, P(c_u64), c_u32, P(P(EntryInfo)), P(c_u32)]),
    "kvswap_entries_free": (None, [P(EntryInfo), c_u32]),
    "kvswap_stat": (c_int, [c_vp, P(Stat)]),
    "kvswap_errno_name": (c_char_p, [c_int]),
}


def _candidates():
    """Where libkvswap.so.0 may be, in the order tried."""
    env = os.environ.get("KVSWAP_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.realpath(__file__))
    out = [os.path.join(here, "libkvswap.so.0")]
    # A source checkout: python/kvswap/ next to build/ (or $KVSWAP_BUILD).
    build = os.environ.get("KVSWAP_BUILD",
                           os.path.join(here, os.pardir, os.pardir, "build"))
    out.append(os.path.join(build, "libkvswap.so.0"))
    found = ctypes.util.find_library("kvswap")
    out.append(found or "libkvswap.so.0")
    return out


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            lib = ctypes.CDLL(path, use_errno=False)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
            continue
        for name, (res, args) in _PROTOS.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        lib.kvswap_path = path
        return lib
    raise ImportError("kvswap: cannot load libkvswap.so.0 (set KVSWAP_LIBRARY "
                      "to its path, or build it with make): " +
                      "; ".join(errors))


lib = _load()
