"""Values made once per object, for objects that live as long as the process (the spec's schema dicts, the
statements built once per repository) and are unhashable or costly to hash: keyed by identity, each entry
keeping its object alive so that its id is never reused by another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    def __init__(self) -> None:
        self._entries: dict[int, tuple[K, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(id(key))
        return entry[1] if entry is not None and entry[0] is key else None

    def put(self, key: K, value: V) -> V:
        self._entries[id(key)] = (key, value)
        return value

    def of(self, key: K, make: Callable[[K], V]) -> V:
        """The value of `key`, made by `make(key)` at the first call."""
        entry = self._entries.get(id(key))
        if entry is None or entry[0] is not key:
            entry = self._entries[id(key)] = (key, make(key))
        return entry[1]
