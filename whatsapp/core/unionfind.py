"""Disjoint sets: which keys end up together when some are said to belong together."""

from collections.abc import Hashable


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, key: Hashable) -> Hashable:
        """The representative of `key`'s set (adding `key` alone if it is new)."""
        parent = self.parent
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(self, keys) -> Hashable:
        """Puts every one of `keys` in one set; returns its representative."""
        keys = list(keys)
        root = self.find(keys[0])
        for other in keys[1:]:
            self.parent[self.find(other)] = root
        return root
