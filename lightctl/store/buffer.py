"""A bounded on-disk FIFO of readings, for while the telemetry backend is unreachable.

Layout of the directory:
  0000000007.open        the segment being appended to
  0000000005-41230.seg   sealed segments, named with their record count
  cursor                 JSON {segment, offset, consumed, dropped}: where replay resumes

A record is a 4-byte length, a 4-byte CRC-32 and the reading as orjson (codec.py). Replay reads a
chunk from the cursor, the caller writes it to the backend, then `commit` moves the cursor (written
atomically), so a crash between the two replays that chunk again: the backends ignore readings they
already hold, so nothing is written twice and nothing inside the bound is lost. Past `max_bytes` the
oldest segment is deleted and its unreplayed records are counted in `dropped`. A torn record at the
end of the open segment (power cut, SIGKILL mid-write) is cut off when the buffer is reopened.

Not thread-safe: one task drives it (through asyncio.to_thread, one call at a time).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from lightctl.model import Reading
from lightctl.store import codec

_HEADER = struct.Struct("<II")
_SEALED = re.compile(r"^(\d{10})-(\d+)\.seg$")
_OPEN = re.compile(r"^(\d{10})\.open$")
MAX_SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Backlog:
    records: int
    bytes: int  # not yet replayed
    dropped: int  # lost to the bound or to corruption, since the buffer was created
    disk_bytes: int  # on disk, replayed part of the oldest segment included


@dataclass(frozen=True, slots=True)
class Chunk:
    readings: list[Reading]
    segment: int
    start: int
    end: int  # file offset after the last record read
    records: int  # records consumed (readings plus any corrupt ones skipped)


@dataclass(slots=True)
class _Segment:
    number: int
    records: int
    size: int
    sealed: bool

    def path(self, directory: Path) -> Path:
        name = f"{self.number:010d}-{self.records}.seg" if self.sealed else f"{self.number:010d}.open"
        return directory / name


class DiskBuffer:
    def __init__(self, path: str | Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes < 4096:
            raise ValueError("buffer bound must be at least 4096 bytes")
        self.dir = Path(path)
        self.max_bytes = max_bytes
        # Several segments fit under the bound, so dropping the oldest never touches the open one.
        self.segment_bytes = min(segment_bytes or MAX_SEGMENT_BYTES, max_bytes // 16)
        self._segments: list[_Segment] = []
        self._offset = 0  # in the oldest segment
        self._consumed = 0  # records of the oldest segment already replayed
        self.dropped = 0
        self._open_segments()

    # Opening

    def _open_segments(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for entry in self.dir.iterdir():
            sealed, unsealed = _SEALED.match(entry.name), _OPEN.match(entry.name)
            if sealed:
                seg = _Segment(int(sealed.group(1)), int(sealed.group(2)), entry.stat().st_size, True)
                self._segments.append(seg)
            elif unsealed:
                records, good = self._scan(entry)
                if good < entry.stat().st_size:
                    with entry.open("r+b") as f:
                        f.truncate(good)
                self._segments.append(_Segment(int(unsealed.group(1)), records, good, False))
        self._segments.sort(key=lambda s: s.number)
        # Only the newest segment may stay open: seal any other left by a crash mid-rotation.
        for seg in self._segments[:-1]:
            if not seg.sealed:
                old = seg.path(self.dir)
                seg.sealed = True
                old.rename(seg.path(self.dir))
        cursor = self.dir / "cursor"
        if cursor.exists():
            try:
                state = orjson.loads(cursor.read_bytes())
                head, offset, consumed = int(state["segment"]), int(state["offset"]), int(state["consumed"])
                self.dropped = int(state.get("dropped", 0))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                head, offset, consumed = -1, 0, 0  # replay all: the backends ignore duplicates
            self._segments = [s for s in self._segments if s.number >= head]
            if self._segments and self._segments[0].number == head:
                self._offset, self._consumed = offset, consumed
        self._delete_strays()

    def _delete_strays(self) -> None:
        keep = {s.path(self.dir).name for s in self._segments} | {"cursor"}
        for entry in self.dir.iterdir():
            if entry.name not in keep and (_SEALED.match(entry.name) or _OPEN.match(entry.name)):
                entry.unlink()

    @staticmethod
    def _scan(path: Path) -> tuple[int, int]:
        """(records, offset after the last whole, valid record) of an open segment."""
        data = path.read_bytes()
        records = pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[pos + _HEADER.size : end]) != crc:
                break
            records += 1
            pos = end
        return records, pos

    # Figures

    def backlog(self) -> Backlog:
        disk = sum(s.size for s in self._segments)
        records = sum(s.records for s in self._segments) - self._consumed
        return Backlog(records, disk - self._offset, self.dropped, disk)

    @property
    def empty(self) -> bool:
        return self.backlog().records == 0

    # Appending

    def append(self, readings: Sequence[Reading]) -> None:
        pending = bytearray()
        pending_records = 0
        for reading in readings:
            payload = codec.dump_reading(reading)
            record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
            if len(record) > self.segment_bytes:
                self.dropped += 1  # absurdly large: never worth evicting others for
                continue
            self._make_room(len(pending) + len(record))
            tail = self._tail()
            if tail.size + len(pending) + len(record) > self.segment_bytes:
                self._write(tail, pending, pending_records)
                pending, pending_records = bytearray(), 0
                self._seal(tail)
            pending += record
            pending_records += 1
        if pending:
            self._write(self._tail(), pending, pending_records)
        self._save_cursor()

    def _tail(self) -> _Segment:
        if not self._segments or self._segments[-1].sealed:
            number = self._segments[-1].number + 1 if self._segments else 1
            seg = _Segment(number, 0, 0, False)
            seg.path(self.dir).touch()
            self._segments.append(seg)
        return self._segments[-1]

    def _write(self, seg: _Segment, data: bytearray, records: int) -> None:
        if not data:
            return
        with seg.path(self.dir).open("ab") as f:
            f.write(data)
        seg.size += len(data)
        seg.records += records

    def _seal(self, seg: _Segment) -> None:
        old = seg.path(self.dir)
        seg.sealed = True
        with old.open("rb+") as f:
            os.fsync(f.fileno())
        old.rename(seg.path(self.dir))

    def _make_room(self, incoming: int) -> None:
        """Drop the oldest sealed segments until `incoming` more bytes fit under the bound."""
        while self._segments and sum(s.size for s in self._segments) + incoming > self.max_bytes:
            oldest = self._segments[0]
            if not oldest.sealed:
                self._seal(oldest)  # it alone exceeds the bound: give it up too
            self.dropped += oldest.records - self._consumed
            oldest.path(self.dir).unlink()
            self._segments.pop(0)
            self._offset = self._consumed = 0

    # Replaying

    def peek(self, max_records: int, max_bytes: int = 8 << 20) -> Chunk | None:
        """The oldest unreplayed readings, without consuming them; None when empty."""
        self._skip_finished()
        if not self._segments or self.empty:
            return None
        seg = self._segments[0]
        with seg.path(self.dir).open("rb") as f:
            f.seek(self._offset)
            data = f.read(min(max_bytes, seg.size - self._offset))
        readings: list[Reading] = []
        pos = records = 0
        while records < max_records and pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if end > len(data):
                if pos == 0 and end <= seg.size - self._offset:
                    # One record larger than max_bytes: read it whole.
                    return self._peek_one(seg, length, crc)
                break
            payload = data[pos + _HEADER.size : end]
            records += 1
            pos = end
            try:
                if zlib.crc32(payload) != crc:
                    raise codec.CorruptRecord("checksum mismatch")
                readings.append(codec.load_reading(payload))
            except codec.CorruptRecord:
                self.dropped += 1
        if records == 0 and seg.sealed:
            # Unreadable to its end (damaged on disk): give up the rest of the segment.
            return Chunk([], seg.number, self._offset, seg.size, seg.records - self._consumed)
        return Chunk(readings, seg.number, self._offset, self._offset + pos, records)

    def _peek_one(self, seg: _Segment, length: int, crc: int) -> Chunk:
        with seg.path(self.dir).open("rb") as f:
            f.seek(self._offset + _HEADER.size)
            payload = f.read(length)
        end = self._offset + _HEADER.size + length
        try:
            if zlib.crc32(payload) != crc:
                raise codec.CorruptRecord("checksum mismatch")
            return Chunk([codec.load_reading(payload)], seg.number, self._offset, end, 1)
        except codec.CorruptRecord:
            self.dropped += 1
            return Chunk([], seg.number, self._offset, end, 1)

    def commit(self, chunk: Chunk) -> None:
        """Mark a peeked chunk as stored in the backend."""
        if not self._segments or self._segments[0].number != chunk.segment or self._offset != chunk.start:
            return  # the bound dropped it meanwhile (already counted)
        self._offset = chunk.end
        self._consumed += chunk.records
        self._skip_finished()
        self._save_cursor()

    def _skip_finished(self) -> None:
        while self._segments and self._consumed >= self._segments[0].records:
            head = self._segments[0]
            if not head.sealed and len(self._segments) == 1:
                if head.size == 0:
                    return
                self._seal(head)  # fully replayed: start the next appends in a fresh segment
            head.path(self.dir).unlink()
            self._segments.pop(0)
            self._offset = self._consumed = 0

    def _save_cursor(self) -> None:
        head = self._segments[0].number if self._segments else 0
        state = {"segment": head, "offset": self._offset, "consumed": self._consumed, "dropped": self.dropped}
        tmp = self.dir / "cursor.tmp"
        tmp.write_bytes(orjson.dumps(state))
        os.replace(tmp, self.dir / "cursor")

    def close(self) -> None:
        self._save_cursor()
