"""The --log format: what is written reads back the same, and bad lines say where."""

from __future__ import annotations

import json

import pytest

from netassist.errors import BadDataError
from netassist.wire.record import Record, Recorder, read_records


def test_record_round_trips_every_byte(tmp_path):
    path = tmp_path / "log.jsonl"
    records = [
        Record(1.5, "tcp", "open", "out", "127.0.0.1:1", "127.0.0.1:2", conn=1),
        Record(2.25, "tcp", "data", "out", "127.0.0.1:1", "127.0.0.1:2", bytes(range(256)), 1),
        Record(3.0, "udp", "data", "in", "[::1]:5", "[::1]:6", "中文".encode("gbk")),
    ]
    with Recorder(path, "gbk") as recorder:
        for record in records:
            recorder.write(record)
    assert list(read_records(path)) == records
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[2]["text"] == "中文"
    assert lines[1]["length"] == 256
    assert lines[1]["time"].startswith("1970-01-01T00:00:02.250")
    assert set(lines[0]) >= {"time", "direction", "local", "peer", "length", "hex", "text"}


def test_undecodable_bytes_stay_in_hex_and_show_escaped(tmp_path):
    path = tmp_path / "log.jsonl"
    with Recorder(path) as recorder:
        recorder.write(Record(1.0, "udp", "data", "in", "a:1", "b:2", b"ok\xff"))
    line = json.loads(path.read_text())
    assert line["hex"] == "6f6bff"
    assert line["text"] == "ok\\xff"


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"ts": 1, "proto": "tcp"}\n')
    with pytest.raises(BadDataError, match=r"log.jsonl:1: not a netassist log record"):
        list(read_records(path))


@pytest.mark.parametrize(
    "line", [b"[1,2]", b"null", b"\xff\xfe\x00binary", b'{"ts": 1e400, "proto": "tcp"}']
)
def test_lines_that_are_not_records_are_bad_data(tmp_path, line):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(BadDataError, match=r"log\.jsonl:1: not a netassist log record"):
        list(read_records(path))
