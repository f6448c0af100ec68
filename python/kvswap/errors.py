# SPDX-License-Identifier: MIT
"""kvswap's exceptions: OSError subclasses carrying errno and kvswapd's message."""
import errno as _errno
import os


class KvswapError(OSError):
    """A libkvswap call failed.

    ``errno`` is the positive errno code, ``strerror`` the C library's text
    for it, and ``message`` what kvswapd (or libkvswap) said about it (it
    names the field at fault), possibly "".
    """

    def __init__(self, code, message="", what=""):
        super().__init__(code, os.strerror(code))
        self.message = message or ""
        self.what = what

    def __str__(self):
        s = "[Errno %d] %s" % (self.errno, self.strerror)
        if self.what:
            s = "%s: %s" % (self.what, s)
        if self.message:
            s += ": " + self.message
        return s


class NotFound(KvswapError, FileNotFoundError):
    """ENOENT: the key is not stored."""


class Timeout(KvswapError, TimeoutError):
    """ETIMEDOUT: a wait ran out of time (the request goes on)."""


class Disconnected(KvswapError, ConnectionError):
    """The connection to kvswapd is gone (ENOTCONN, EPIPE, ECONNRESET...)."""


class NoSpace(KvswapError):
    """ENOSPC: the store (or its metadata log) has no room."""


class Cancelled(KvswapError):
    """ECANCELED: the request was cancelled."""


class ChecksumError(KvswapError):
    """EBADMSG: the bytes read differ from those stored; the entry is dropped."""


class BatchError(KvswapError):
    """Some entries of a batch failed.

    ``statuses`` has one int per entry (0, kvswap.SKIPPED or -errno) and
    ``errors`` maps each failed entry's index to its KvswapError.
    """

    def __init__(self, statuses, errors, what=""):
        first = min(errors)
        e = errors[first]
        super().__init__(e.errno, "%d of %d entries failed; entry %d: %s" % (
            len(errors), len(statuses), first, e.message or e.strerror), what)
        self.statuses = statuses
        self.errors = errors


_CLASSES = {
    _errno.ENOENT: NotFound,
    _errno.ETIMEDOUT: Timeout,
    _errno.ENOTCONN: Disconnected,
    _errno.EPIPE: Disconnected,
    _errno.ECONNRESET: Disconnected,
    _errno.ECONNREFUSED: Disconnected,
    _errno.ENOSPC: NoSpace,
    _errno.ECANCELED: Cancelled,
    _errno.EBADMSG: ChecksumError,
}


def error(code, message="", what=""):
    """The exception for a libkvswap return value ``code`` (< 0) or errno (> 0)."""
    code = abs(code)
    return _CLASSES.get(code, KvswapError)(code, message, what)
