# SPDX-License-Identifier: MIT
from .client import SKIPPED as SKIPPED
from .client import Client as Client
from .client import Entry as Entry
from .client import Future as Future
from .client import Region as Region
from .errors import BatchError as BatchError
from .errors import Cancelled as Cancelled
from .errors import ChecksumError as ChecksumError
from .errors import Disconnected as Disconnected
from .errors import KvswapError as KvswapError
from .errors import NoSpace as NoSpace
from .errors import NotFound as NotFound
from .errors import Timeout as Timeout
from .pool import HostTensorAllocator as HostTensorAllocator
from .pool import KVPool as KVPool

def library_path() -> str: ...
