"""DigestSet: a set of 64-bit digests in a flat array, as a dry run of a million products keeps them."""

from __future__ import annotations

import random

from localize.planning.seen import DigestSet


def test_it_answers_as_a_set_does_through_its_growth() -> None:
    rng = random.Random(5)
    digests = [rng.getrandbits(64) for _ in range(20_000)] + [1, (1 << 64) - 1]
    seen, reference = DigestSet(capacity=4), set()
    for digest in digests + digests[:500]:  # the repeats come after the table has grown many times
        assert seen.add(digest) == (digest not in reference)
        reference.add(digest)
    assert len(seen) == len(reference)
    assert all(digest in seen for digest in digests)
    assert not any(rng.getrandbits(64) in seen for _ in range(1_000))


def test_negative_and_wide_hashes_are_folded_to_64_bits() -> None:
    seen = DigestSet()
    assert seen.add(-1) and not seen.add((1 << 64) - 1)  # Python's hash() of a tuple may be negative
    assert seen.add(0) and not seen.add(1)  # zero marks a free slot: it stands as 1 (one in 2^64)
    assert seen.add(hash(("amazon", "de-DE", 42))) and hash(("amazon", "de-DE", 42)) in seen


def test_a_million_digests_take_tens_of_megabytes_not_hundreds() -> None:
    seen = DigestSet()
    for number in range(1_000_000):
        seen.add(number * 0x9E3779B97F4A7C15)
    assert len(seen) == 1_000_000
    assert seen._slots.itemsize * len(seen._slots) <= 32 * 1_000_000  # at most 32 bytes a digest
