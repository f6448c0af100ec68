# SPDX-License-Identifier: MIT
import threading
from typing import Any, Iterable, List, Optional, Sequence

from .client import Future, Key, Region
from .pool import KVPool


def available() -> bool: ...


class Pinned:
    address: int
    nbytes: int
    pinned: bool

    def __init__(self, address: int, nbytes: int,
                 portable: bool = ...) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Pinned": ...
    def __exit__(self, *exc: Any) -> None: ...


def pin(region: Region, portable: bool = ...) -> Pinned: ...


class LayerLoad:
    loader: "LayerwiseLoader"
    fut: Future
    host_blocks: List[int]
    dev_blocks: List[int]
    ready: List[threading.Event]
    events: List[Any]
    issued_at: List[Optional[float]]
    error: Optional[BaseException]

    def wait_layer(self, layer: int) -> Any: ...
    def result(self) -> List[int]: ...


class LayerwiseLoader:
    pool: KVPool
    device_layers: List[Any]
    cuda: bool
    stream: Any

    def __init__(self, pool: KVPool, device_layers: Sequence[Any],
                 stream: Any = ...) -> None: ...
    def load(self, keys: Iterable[Key], host_blocks: Iterable[int],
             dev_blocks: Iterable[int], **swap_in_options: Any) -> LayerLoad: ...
    def load_all(self, keys: Iterable[Key], host_blocks: Iterable[int],
                 dev_blocks: Iterable[int]) -> List[int]: ...
