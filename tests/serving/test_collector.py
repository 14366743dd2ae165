"""The data collector, in process: what it writes, how it rotates, and that a full queue drops instead of waiting."""
import json
import time

import pytest

from ml_service.serving.collector import Collector


def _records(directory):
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_close_writes_every_queued_record_in_order(tmp_path):
    collector = Collector(str(tmp_path), max_bytes=1_000_000)
    for i in range(50):
        collector.collect({"i": i, "result": [float(i)]})
    collector.close()
    assert [r["i"] for r in _records(tmp_path)] == list(range(50))


def test_rotates_to_a_new_file_past_max_bytes(tmp_path):
    collector = Collector(str(tmp_path), max_bytes=100)
    for i in range(20):
        collector.collect({"i": i, "data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]})
    collector.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) > 1
    assert all(f.stat().st_size <= 100 for f in files)
    assert len(_records(tmp_path)) == 20


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    dropped = []
    collector = Collector(str(tmp_path), on_drop=lambda: dropped.append(1), capacity=1)
    collector.close()  # the writer has stopped: nothing drains the queue any more
    collector.collect({"i": 1})  # fills the one slot
    collector.collect({"i": 2})  # must return at once, dropped and counted
    assert dropped == [1]


def test_keeps_only_the_newest_files(tmp_path):
    collector = Collector(str(tmp_path), max_bytes=60, keep_files=3)
    for i in range(30):
        collector.collect({"i": i, "data": [1, 2, 3]})
    collector.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) == 3
    assert [r["i"] for r in _records(tmp_path)][-1] == 29  # the newest records are the ones kept


def test_records_reach_the_disk_within_the_flush_interval(tmp_path):
    import time

    collector = Collector(str(tmp_path), flush_s=0.1)
    collector.collect({"i": 1})
    deadline = time.monotonic() + 5
    while not _records(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _records(tmp_path) == [{"i": 1}]  # on disk before close(): what a kill -9 would leave
    collector.close()


def test_records_from_several_threads_are_written_once_each(tmp_path):
    import threading

    collector = Collector(str(tmp_path), max_bytes=5_000, flush_s=0.01, keep_files=1000)

    def produce(thread):
        for i in range(2000):
            collector.collect({"thread": thread, "i": i})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    collector.close()
    records = _records(tmp_path)
    assert sorted((r["thread"], r["i"]) for r in records) == [(t, i) for t in range(4) for i in range(2000)]
    for t in range(4):  # each thread's records in the order it collected them
        assert [r["i"] for r in records if r["thread"] == t] == list(range(2000))


def test_a_half_full_buffer_is_written_before_the_flush_interval(tmp_path):
    import time

    collector = Collector(str(tmp_path), capacity=100, flush_s=3600)
    for i in range(50):
        collector.collect({"i": i})
    deadline = time.monotonic() + 5
    while len(_records(tmp_path)) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["i"] for r in _records(tmp_path)] == list(range(50))
    collector.close()


def _line(i: int) -> int:
    return len(json.dumps({"i": i}, separators=(",", ":"))) + 1


@pytest.mark.parametrize("spare", [0, -1])
def test_a_file_takes_records_up_to_exactly_max_bytes_and_the_next_record_opens_a_new_file(tmp_path, spare):
    sizes = [_line(i) for i in range(10)]
    collector = Collector(str(tmp_path), max_bytes=sum(sizes) + spare)
    for i in range(10):
        collector.collect({"i": i})
    collector.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert [r["i"] for r in _records(tmp_path)] == list(range(10))  # nothing lost, nothing split
    assert [len(f.read_text().splitlines()) for f in files] == ([10] if spare == 0 else [9, 1])
    assert all(f.stat().st_size <= sum(sizes) + spare for f in files)


@pytest.mark.parametrize("spare", [0, -1])
def test_an_open_file_is_filled_to_exactly_max_bytes_across_flushes(tmp_path, spare):
    sizes = [_line(i) for i in range(10)]
    collector = Collector(str(tmp_path), max_bytes=sum(sizes) + spare, flush_s=0.01)
    for i in range(5):
        collector.collect({"i": i})
    deadline = time.monotonic() + 30  # the event: the first five are on disk, in an open file
    while len(_records(tmp_path)) < 5:
        assert time.monotonic() < deadline, "the first records never reached the disk"
        time.sleep(0.01)
    for i in range(5, 10):
        collector.collect({"i": i})
    collector.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert [r["i"] for r in _records(tmp_path)] == list(range(10))
    assert [len(f.read_text().splitlines()) for f in files] == ([10] if spare == 0 else [9, 1])


def test_the_buffer_holds_exactly_capacity_records_and_drops_the_next(tmp_path):
    dropped = []
    collector = Collector(str(tmp_path), on_drop=lambda: dropped.append(1), capacity=4)
    collector.close()  # the writer has stopped: what is collected now stays in the buffer
    for i in range(4):
        collector.collect({"i": i})
    assert dropped == []
    collector.collect({"i": 4})
    collector.collect({"i": 5})
    assert dropped == [1, 1]


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_exactly_keep_files_newest_files_are_kept(tmp_path, keep):
    collector = Collector(str(tmp_path), max_bytes=_line(0), keep_files=keep)  # one record a file
    for i in range(8):
        collector.collect({"i": i})
    collector.close()
    assert [r["i"] for r in _records(tmp_path)] == list(range(8 - keep, 8))


def test_the_file_being_written_is_never_deleted_though_another_workers_files_are_newer(tmp_path):
    """Workers share the folder: another worker's file, written later than this one's (its mtime ahead), is among
    the newest; with keep_files=1 this worker still keeps the file it writes to, and every record it collects."""
    import os

    other = tmp_path / "predictions-99999999-999999-1-000001.jsonl"  # another worker's current file
    other.write_text('{"i": -1}\n')
    ahead = time.time() + 3600
    os.utime(other, (ahead, ahead))
    collector = Collector(str(tmp_path), max_bytes=1_000_000, keep_files=1)
    for i in range(3):
        collector.collect({"i": i})
    collector.close()
    assert sorted(r["i"] for r in _records(tmp_path)) == [-1, 0, 1, 2]
