"""The render cache: rendered bytes by (kind, inputs' version), bounded in bytes, rendered once per key
even when many readers ask at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from cachetools import LRUCache


class RenderCache:
    """Rendered bytes by (kind, inputs' version), bounded in bytes; renders once per key."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._cache: LRUCache[Hashable, bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Lock] = {}

    def peek(self, key: Hashable) -> bytes | None:
        with self._lock:
            return self._cache.get(key)

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    return hit
            data = render()
            with self._lock:
                if len(data) <= self._cache.maxsize:
                    self._cache[key] = data
                self._inflight.pop(key, None)
            return data
