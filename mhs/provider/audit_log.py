"""The audit trail from the event loop: entries written in batches, off the loop.

``record`` waits until its entry is on disk. While one batch is being written (in a worker
thread: the ``flock``, ``write`` and ``fsync`` of mhs.provider.audit_file), the entries of
requests answered meanwhile gather into the next, so a busy provider pays one ``fsync`` per
batch rather than per request, and the loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mhs.provider.audit import AuditDraft, ChainHead
from mhs.provider.audit_file import AuditFile, read_lines


class AuditLog:
    """One provider's audit trail, between ``open`` and ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.head = ChainHead()
        self._file = AuditFile(path)
        self._pending: list[tuple[AuditDraft, asyncio.Future[dict[str, Any]]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the file (AuditFileError, one line, if it cannot be used)."""
        self.head = await asyncio.to_thread(self._file.open)

    async def record(self, draft: AuditDraft) -> dict[str, Any]:
        """Chain and store ``draft``; the sealed entry once it is on disk."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((draft, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())
        # Shielded: a caller that goes away must not take its entry out of a batch.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Write what is pending, then close the file."""
        if self._writing is not None:
            await self._writing
        self._file.close()

    async def entries(self, since: int = 0, limit: int | None = None) -> list[bytes]:
        """Stored lines of entries after ``since`` (by seq), at most ``limit`` of them."""
        return await asyncio.to_thread(_read, self.path, since, limit)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                sealed = await asyncio.to_thread(self._file.append, [d for d, _ in batch])
            except Exception as error:  # every waiting request hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), entry in zip(batch, sealed, strict=True):
                if not future.done():
                    future.set_result(entry)
            self.head = ChainHead(sealed[-1]["seq"], sealed[-1]["hash"])
        self._writing = None


def _read(path: Path, since: int, limit: int | None) -> list[bytes]:
    found: list[bytes] = []
    for number, line in enumerate(read_lines(path), start=1):
        # A line's place stands for its seq: a damaged line still shows where it is.
        if number <= since:
            continue
        if limit is not None and len(found) >= limit:
            break
        found.append(line)
    return found
