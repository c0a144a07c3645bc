"""Commits to a SQLite database in WAL mode, counted from its `-wal` file without opening it.

Every transaction appends its pages to the write-ahead log as frames; the last frame
of a commit carries the database size in its header (other frames carry 0), and every
frame of the current log carries the log header's two salts. Reading the file from
another process takes no lock and changes nothing in the database.

After a checkpoint SQLite starts the log again from its beginning, with new salts.
Frames of the old log that were not read yet are still in place after the new log's
first frames; they are read first (a restart overwrites them only once the new log
has grown past them, which between two polls 50 ms apart it cannot).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct(">IIIIII")  # magic, version, page size, checkpoint no, salt-1, salt-2
_FRAME = struct.Struct(">IIII")  # page number, size after commit (0: not a commit), salts
_MAGIC = (0x377F0682, 0x377F0683)
_HEADER_SIZE, _FRAME_HEADER_SIZE = 32, 24


class WalCommits:
    """Counts the commits (and frames) appended to `<db>-wal` after `start()`."""

    def __init__(self, db: Path) -> None:
        self.path = Path(f"{db}-wal")
        self.commits = 0
        self.frames = 0
        self.restarts = 0
        self._salts: tuple[int, int] | None = None
        self._frame_size = 0
        self._at = _HEADER_SIZE

    def start(self) -> None:
        """Skip what the log holds now: only later commits count."""
        self._scan(count=False)

    def poll(self) -> None:
        """Count the commits appended since the last look."""
        self._scan(count=True)

    def _scan(self, *, count: bool) -> None:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            head = f.read(_HEADER_SIZE)
            if len(head) < _HEADER_SIZE:
                return
            magic, _, page_size, _, salt1, salt2 = _HEADER.unpack_from(head)
            if magic not in _MAGIC:
                return
            if self._salts is None:
                self._salts, self._frame_size = (salt1, salt2), _FRAME_HEADER_SIZE + page_size
            elif (salt1, salt2) != self._salts:
                self._read(f, count)  # the rest of the old log
                self._salts, self._at = (salt1, salt2), _HEADER_SIZE
                self.restarts += 1
            self._read(f, count)

    def _read(self, f: BinaryIO, count: bool) -> None:
        while True:
            f.seek(self._at)
            head = f.read(_FRAME_HEADER_SIZE)
            if len(head) < _FRAME_HEADER_SIZE:
                return
            _, size_after_commit, salt1, salt2 = _FRAME.unpack_from(head)
            if (salt1, salt2) != self._salts:
                return  # the end of this log: a frame of an older one, or nothing yet
            self._at += self._frame_size
            if count:
                self.frames += 1
                if size_after_commit:
                    self.commits += 1
