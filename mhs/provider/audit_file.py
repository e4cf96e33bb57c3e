"""The audit trail on disk: an append-only JSON Lines file per provider.

Every append takes an exclusive ``flock`` on the file, reads the chain head from its last
line and writes the whole batch in one ``write`` followed by ``fsync``, so several
providers (replicas, or runs one after another) sharing a file extend one chain, and an
entry is on disk before the caller is told it is. ``flock`` is advisory and local: a writer
that ignores it, or a network filesystem that does not honour it, can still break the chain,
which ``verify`` then shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mhs.provider.audit import AuditDraft, ChainHead, decode, encode, seal

_TAIL_CHUNK = 64 * 1024


class AuditFileError(OSError):
    """The audit file cannot be used; the message names the file, the cause and the fix."""


def audit_path(directory: Path, mhs_name: str) -> Path:
    """Where the provider of MHS ``mhs_name`` keeps its audit trail."""
    return directory / f"{mhs_name}.audit.jsonl"


class AuditFile:
    """One provider's audit file, open for appending from ``open`` to ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> ChainHead:
        """Open (creating it and its folder) and return the chain head it ends at."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as error:
            raise AuditFileError(
                f"cannot write the audit file {self.path} ({error.strerror}): set "
                "MHS_AUDIT_DIR to a writable folder"
            ) from None
        try:
            with _locked(self._fd, fcntl.LOCK_SH):
                return self._head()
        except AuditFileError:
            self.close()
            raise

    def append(self, drafts: Sequence[AuditDraft]) -> list[dict[str, Any]]:
        """Chain ``drafts`` after the file's last entry and write them; the sealed entries."""
        if self._fd is None:
            raise AuditFileError(f"the audit file {self.path} is not open")
        with _locked(self._fd, fcntl.LOCK_EX):
            head = self._head()
            sealed = []
            for draft in drafts:
                entry = seal(draft, head)
                head = ChainHead(entry["seq"], entry["hash"])
                sealed.append(entry)
            data = memoryview(b"".join(encode(entry) for entry in sealed))
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        return sealed

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _head(self) -> ChainHead:
        last, whole = _last_line(self.path)
        if last is None:
            return ChainHead()
        problem = "its last line has no newline: a write was cut short"
        if whole:
            try:
                entry = decode(last)
            except ValueError as error:
                problem = str(error)
            else:
                return ChainHead(entry["seq"], entry["hash"])
        raise AuditFileError(
            f"the audit file {self.path} ends in a damaged entry ({problem}): move the file "
            "aside and start again (`mhs audit verify --file` says where it breaks)"
        )


def read_lines(path: Path) -> Iterator[bytes]:
    """The stored lines of ``path`` (none if it does not exist), under a shared lock so that
    no batch is read half-written."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle, _locked(handle.fileno(), fcntl.LOCK_SH):
        for line in handle:
            yield line.rstrip(b"\n")


def _last_line(path: Path) -> tuple[bytes | None, bool]:
    """The last line of ``path`` without its newline (None if the file is empty), and whether
    the file ends in a newline: one that does not was cut short mid-write."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return None, True
        handle.seek(size - 1)
        whole = handle.read(1) == b"\n"
        end = size - 1 if whole else size
        start = end
        while start > 0:
            step = min(_TAIL_CHUNK, start)
            handle.seek(start - step)
            newline = handle.read(step).rfind(b"\n")
            if newline >= 0:
                start = start - step + newline + 1
                break
            start -= step
        handle.seek(start)
        return handle.read(end - start), whole


@contextlib.contextmanager
def _locked(fd: int, mode: int) -> Iterator[None]:
    """``flock`` held for a ``with`` block."""
    fcntl.flock(fd, mode)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
