"""Which 64-bit digests a run has met, in 16 to 32 bytes each.

A run remembers the copy of every job it sends (two jobs asking the same copy get one answer),
and a catalog of a million products has two million of them. In a Python set each costs about
a hundred bytes (the string, or the int object, and the table's slot); here a digest is eight
bytes in an open-addressing table kept under half full, so a dry run of a million products stays
within tens of megabytes of what a small one takes.
"""

from __future__ import annotations

from array import array

# Zero marks a free slot; a digest that is zero is stored as this instead (one in 2^64 apart).
_ZERO_STANDS_FOR = 1
_MASK64 = (1 << 64) - 1


class DigestSet:
    """A set of 64-bit integers (hashes): `add` says whether one is new."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while size < capacity * 2:
            size *= 2
        self._slots = _zeros(size)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, digest: int) -> bool:
        digest = (digest & _MASK64) or _ZERO_STANDS_FOR
        return self._slots[self._slot(digest)] == digest

    def add(self, digest: int) -> bool:
        """Put `digest` in; True when it was not there yet."""
        digest = (digest & _MASK64) or _ZERO_STANDS_FOR
        index = self._slot(digest)
        if self._slots[index] == digest:
            return False
        self._slots[index] = digest
        self._count += 1
        if self._count * 2 > len(self._slots):
            self._grow()
        return True

    def _slot(self, digest: int) -> int:
        """Where `digest` is, or the free slot it would go in (linear probing)."""
        slots = self._slots
        mask = len(slots) - 1
        index = digest & mask
        while True:
            found = slots[index]
            if found == digest or found == 0:
                return index
            index = (index + 1) & mask

    def _grow(self) -> None:
        old = self._slots
        self._slots = _zeros(2 * len(old))
        self._count = 0
        for digest in old:
            if digest:
                self.add(digest)


def _zeros(size: int) -> array[int]:
    """`size` free slots, made in place (array("Q", bytes(...)) would hold a copy of them too)."""
    return array("Q", [0]) * size
