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
        self._written: asyncio.Future[None] | None = None

    async def add(self, items: Iterable[Item]) -> None:
        self._pending.extend(items)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._flush)
        # Shielded: a caller cancelled while it waits (Ctrl-C) must not cancel the others' write.
        await asyncio.shield(self._written)

    def _flush(self) -> None:
        items, self._pending = self._pending, []
        written, self._written = self._written, None
        assert written is not None
        try:
            self._write(items)
        except Exception as exc:  # every waiting caller gets it, as if it had written alone
            written.set_exception(exc)
            written.exception()  # retrieved here too: no "never retrieved" warning when all waiters left
        else:
            written.set_result(None)
