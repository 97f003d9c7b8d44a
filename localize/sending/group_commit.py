"""Group commit: writes asked for in one turn of the event loop share one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class GroupCommit(Generic[Item]):
    """Callers `await add(items)`; the items of every caller in the same turn of the event loop
    are written by one call of `write` at the start of the next, and each caller resumes once
    that call returned (or raises what it raised). A request marked as sent this way is on disk
    before it goes out, at one transaction for the dozen or so a turn starts instead of one each."""

    def __init__(self, write: Callable[[Iterable[Item]], None]) -> None:
        self._write = write
        self._pending: list[Item] = []
        # One future per waiting caller: one cancelled (Ctrl-C) leaves the others' write as it is.
        self._waiting: list[asyncio.Future[None]] = []

    async def add(self, items: Iterable[Item]) -> None:
        self._pending.extend(items)
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        written: asyncio.Future[None] = loop.create_future()
        self._waiting.append(written)
        await written

    def _flush(self) -> None:
        items, self._pending = self._pending, []
        waiting, self._waiting = self._waiting, []
        try:
            self._write(items)
        except Exception as exc:  # every waiting caller gets it, as if it had written alone
            for written in waiting:
                if not written.done():
                    written.set_exception(exc)
        else:
            for written in waiting:
                if not written.done():
                    written.set_result(None)
