"""Group commit: the sends one turn of the event loop starts share one write."""

from __future__ import annotations

import asyncio

import pytest

from localize.sending.group_commit import GroupCommit


def test_callers_of_one_turn_share_one_write_and_resume_after_it() -> None:
    writes: list[list[int]] = []
    resumed: list[tuple[int, int]] = []  # (caller, writes done when it resumed)

    async def caller(group: GroupCommit[int], number: int) -> None:
        await group.add([number, number * 10])
        resumed.append((number, len(writes)))

    async def main() -> None:
        group: GroupCommit[int] = GroupCommit(lambda items: writes.append(list(items)))
        await asyncio.gather(*(caller(group, number) for number in range(1, 6)))
        await caller(group, 6)  # a later turn: a write of its own

    asyncio.run(main())
    assert writes == [[1, 10, 2, 20, 3, 30, 4, 40, 5, 50], [6, 60]]
    assert sorted(resumed) == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2)]


def test_a_failed_write_reaches_every_caller_and_the_next_turn_writes_again() -> None:
    writes: list[list[str]] = []

    def write(items: list[str]) -> None:
        if "full" in items:
            raise OSError(28, "No space left on device")
        writes.append(list(items))

    async def main() -> list[BaseException | None]:
        group: GroupCommit[str] = GroupCommit(write)
        outcomes = await asyncio.gather(group.add(["a"]), group.add(["full"]), return_exceptions=True)
        await group.add(["b"])
        return outcomes

    outcomes = asyncio.run(main())
    assert [type(outcome) for outcome in outcomes] == [OSError, OSError]
    assert writes == [["b"]]


def test_a_cancelled_caller_does_not_cancel_the_others_write() -> None:
    writes: list[list[str]] = []

    async def main() -> None:
        group: GroupCommit[str] = GroupCommit(lambda items: writes.append(list(items)))
        first = asyncio.ensure_future(group.add(["cancelled"]))
        second = asyncio.ensure_future(group.add(["kept"]))
        await asyncio.sleep(0)  # both are waiting for the write
        first.cancel()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    assert writes == [["cancelled", "kept"]]
