"""The on-disk buffer: order kept, bound respected, oldest dropped and counted, survives reopening."""

from __future__ import annotations

from pathlib import Path

from lightctl.model import Reading
from lightctl.store.buffer import DiskBuffer


def make(n: int, first: int = 0) -> list[Reading]:
    return [
        Reading(
            f"ha-{i % 7:03d}",
            1_767_225_600.0 + i,
            i,
            {"power": 50.0 + i, "voltage": 220.0},
            frozenset(),
            i + 0.5,
        )
        for i in range(first, first + n)
    ]


def drain(buffer: DiskBuffer, chunk: int = 37) -> list[Reading]:
    out: list[Reading] = []
    while (part := buffer.peek(chunk)) is not None:
        out.extend(part.readings)
        buffer.commit(part)
    return out


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".seg", ".open"))


def test_readings_come_back_whole_and_in_order(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=1 << 20)
    readings = make(500)
    for i in range(0, 500, 60):
        buffer.append(readings[i : i + 60])

    assert buffer.backlog().records == 500
    assert drain(buffer) == readings
    assert buffer.empty
    assert buffer.backlog().dropped == 0


def test_peek_without_commit_replays_the_same_chunk(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=1 << 20)
    buffer.append(make(10))
    first = buffer.peek(4)
    again = buffer.peek(4)
    assert first is not None
    assert again is not None
    assert first.readings == again.readings == make(4)


def test_bound_is_respected_and_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    bound = 32 * 1024
    buffer = DiskBuffer(tmp_path, max_bytes=bound)
    readings = make(2000)  # several times what fits
    for i in range(0, 2000, 50):
        buffer.append(readings[i : i + 50])
        assert disk_bytes(tmp_path) <= bound

    backlog = buffer.backlog()
    kept = drain(buffer)
    assert backlog.records == len(kept)
    assert backlog.dropped == 2000 - len(kept) > 0
    assert kept == readings[-len(kept) :]  # the newest survive, in order
    assert backlog.bytes <= bound


def test_a_reopened_buffer_resumes_where_replay_stopped(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=64 * 1024)
    readings = make(300)
    buffer.append(readings[:200])
    replayed = 0
    while replayed < 120:  # a chunk never spans segments, so it takes a few
        part = buffer.peek(120 - replayed)
        assert part is not None
        buffer.commit(part)
        replayed += len(part.readings)
    uncommitted = buffer.peek(30)  # read but not confirmed stored: must come back
    assert uncommitted is not None
    buffer.append(readings[200:])
    buffer.close()

    reopened = DiskBuffer(tmp_path, max_bytes=64 * 1024)
    assert reopened.backlog().records == 180
    assert drain(reopened) == readings[120:]
    reopened.close()
    assert DiskBuffer(tmp_path, max_bytes=64 * 1024).empty


def test_a_torn_record_at_the_end_is_cut_off_on_reopen(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=1 << 20)
    readings = make(20)
    buffer.append(readings)
    (segment,) = tmp_path.glob("*.open")
    with segment.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")  # a header promising 64 bytes, and a power cut

    reopened = DiskBuffer(tmp_path, max_bytes=1 << 20)
    assert reopened.backlog().records == 20
    reopened.append(make(5, first=20))
    assert drain(reopened) == make(25)


def test_a_damaged_record_is_skipped_and_counted(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, max_bytes=1 << 20)
    buffer.append(make(3))
    (segment,) = tmp_path.glob("*.open")
    data = bytearray(segment.read_bytes())
    data[12] ^= 0xFF  # inside the first record's payload
    segment.write_bytes(bytes(data))

    survivors = drain(buffer)
    assert survivors == make(3)[1:]
    assert buffer.backlog().dropped == 1
