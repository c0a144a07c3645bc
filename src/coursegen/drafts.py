"""The text of lessons being written, held in memory, and the readers who watch it grow.

A lesson call hands each piece of text to its `Draft`. Pieces are only appended
there; nothing is encoded until a reader needs it. Readers get the text as
`text` chunks whose `offset` and `end` count Unicode code points (Python's `len`),
deltas that arrive within COALESCE seconds travelling as one chunk, encoded once
for every reader. The database gets the text so far from the runner's saver, at
most once a second, so a reload or a restarted process shows it too. Where nodes
share a database, a draft that another node's reader asked for also sends its
chunks there (`share`), and chunks of lessons written elsewhere arrive here for
this node's readers (`arrived`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from coursegen.events import encode_data

# Deltas arriving within this many seconds are sent to readers as one chunk.
COALESCE = 0.005

# Hands a chunk (lesson id, attempt, offset, text) to the other nodes.
ShareText = Callable[[int, int, int, str], None]


class Draft:
    """One attempt at a lesson's text, as it is being written."""

    __slots__ = (
        "_flush_timer", "_parts", "_text", "attempt", "course_id", "job_id",
        "lesson_id", "readers", "saved", "share",
    )  # fmt: skip

    def __init__(self, lesson_id: int, job_id: str, course_id: int, attempt: int) -> None:
        self.lesson_id = lesson_id
        self.job_id = job_id
        self.course_id = course_id
        self.attempt = attempt
        self._text = ""  # every piece already sent to the readers (or joined for a reader)
        self._parts: list[str] = []  # pieces not yet sent
        self._flush_timer: asyncio.TimerHandle | None = None
        self.readers: set[Reader] = set()
        self.saved = 0  # length of the text the database holds
        # Set while other nodes have readers of this lesson: each chunk goes to them too.
        self.share: ShareText | None = None

    @property
    def text(self) -> str:
        """The whole text so far."""
        if self._parts:
            return self._text + "".join(self._parts)
        return self._text

    def append(self, piece: str) -> None:
        """Take the next piece from the model: cheap, as it runs once for every delta."""
        self._parts.append(piece)
        if (self.readers or self.share) and self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(COALESCE, self.flush)

    def flush(self) -> None:
        """Send the pieces not yet sent to every reader, as one chunk."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._parts:
            return
        chunk = "".join(self._parts)
        self._parts.clear()
        offset = len(self._text)
        self._text += chunk
        if self.share is not None:
            self.share(self.lesson_id, self.attempt, offset, chunk)
        if not self.readers:
            return
        data = {
            "lesson_id": self.lesson_id,
            "attempt": self.attempt,
            "offset": offset,
            "end": offset + len(chunk),
            "text": chunk,
        }
        frame = f"event: text\r\ndata: {encode_data(data)}\r\n\r\n".encode()
        for reader in self.readers:
            reader.push(frame)

    def attach(self, reader: Reader) -> str:
        """Add a reader (anew, if it is one): the text so far, after which its chunks begin."""
        self.flush()
        reader.start_over()
        self.readers.add(reader)
        reader.draft = self
        return self._text

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for reader in self.readers:
            reader.draft = None
        self.readers.clear()


class Reader:
    """One lesson stream's place: the chunks it has yet to send; `wake` rouses the stream."""

    __slots__ = ("draft", "frames", "lesson_id", "remote", "restarted", "wake")

    def __init__(self, lesson_id: int, wake: Callable[[], None]) -> None:
        self.lesson_id = lesson_id
        self.wake = wake
        self.frames: deque[bytes] = deque()
        self.draft: Draft | None = None
        self.restarted = False  # a new attempt began: the stream owes a new snapshot
        # Chunks (attempt, offset, text) of this lesson written on another node.
        self.remote: list[tuple[int, int, str]] = []

    def push(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.wake()

    def take(self) -> bytes:
        """Every chunk not yet sent, as one write."""
        frames = b"".join(self.frames)
        self.frames.clear()
        return frames

    def start_over(self) -> None:
        """A snapshot is being sent: it holds everything so far, so nothing is owed."""
        self.frames.clear()
        self.remote.clear()
        self.restarted = False

    def take_remote(self) -> list[tuple[int, int, str]]:
        chunks, self.remote = self.remote, []
        return chunks

    def restart(self) -> None:
        self.frames.clear()  # chunks of the older attempt are never sent after this
        self.draft = None
        self.restarted = True
        self.wake()


class Drafts:
    """Every draft of this process, by lesson, and the readers watching each lesson."""

    def __init__(self) -> None:
        self._by_lesson: dict[int, Draft] = {}
        self._watchers: dict[int, set[Reader]] = {}
        # Set where other nodes share the database: how to send them a draft's text.
        self.share_text: ShareText | None = None

    def start(self, lesson_id: int, job_id: str, course_id: int, attempt: int) -> Draft:
        """A new attempt at the lesson begins: its readers start over from it."""
        old = self._by_lesson.get(lesson_id)
        if old is not None:
            old.close()
        draft = self._by_lesson[lesson_id] = Draft(lesson_id, job_id, course_id, attempt)
        for reader in self._watchers.get(lesson_id, ()):
            reader.restart()
        return draft

    def end(self, draft: Draft) -> None:
        """The attempt is over (its result stored, or it was cancelled)."""
        draft.flush()
        if self._by_lesson.get(draft.lesson_id) is draft:
            del self._by_lesson[draft.lesson_id]
        draft.close()

    def get(self, lesson_id: int) -> Draft | None:
        return self._by_lesson.get(lesson_id)

    def wanted(self, lesson_id: int) -> None:
        """Another node has a reader of this lesson: if it is written here, send that node
        the text so far, then every chunk as it comes."""
        draft = self._by_lesson.get(lesson_id)
        if draft is None or self.share_text is None:
            return
        draft.flush()
        draft.share = self.share_text
        self.share_text(lesson_id, draft.attempt, 0, draft.text)

    def arrived(self, lesson_id: int, attempt: int, offset: int, text: str) -> None:
        """A chunk of a lesson another node writes: for this node's readers of it."""
        if lesson_id in self._by_lesson:
            return  # written here: its readers have it from the draft
        for reader in self._watchers.get(lesson_id, ()):
            reader.remote.append((attempt, offset, text))
            reader.wake()

    def unsaved(self) -> list[Draft]:
        """Drafts whose text grew since the database last got it."""
        return [d for d in self._by_lesson.values() if len(d.text) != d.saved]

    def watch(self, lesson_id: int, wake: Callable[[], None]) -> Reader:
        """Follow a lesson's drafts: `wake` is called when chunks or a new attempt come."""
        reader = Reader(lesson_id, wake)
        self._watchers.setdefault(lesson_id, set()).add(reader)
        return reader

    def unwatch(self, reader: Reader) -> None:
        if reader.draft is not None:
            reader.draft.readers.discard(reader)
            reader.draft = None
        watchers = self._watchers.get(reader.lesson_id)
        if watchers is not None:
            watchers.discard(reader)
            if not watchers:
                del self._watchers[reader.lesson_id]

    def close(self) -> None:
        """Wake every reader for the last time: the server is stopping."""
        for watchers in self._watchers.values():
            for reader in watchers:
                reader.wake()
