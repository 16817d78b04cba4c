"""The client's last step: a verified .part takes its final name without replacing anything."""

from __future__ import annotations

import errno

import pytest

from netassist.errors import ExitCode
from netassist.transfer import client
from netassist.transfer.client import TransferError


@pytest.fixture
def part(tmp_path):
    path = tmp_path / "file.txt.part"
    path.write_text("arrived")
    return path


def test_settle_gives_the_part_its_name(part, tmp_path):
    client.settle_part(str(part), str(tmp_path / "file.txt"), force=False)
    assert (tmp_path / "file.txt").read_text() == "arrived"
    assert not part.exists()


def test_settle_never_replaces_a_file_that_appeared_meanwhile(part, tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    with pytest.raises(TransferError) as raised:
        client.settle_part(str(part), str(tmp_path / "file.txt"), force=False)
    assert raised.value.exit_code == ExitCode.FILE
    assert "--force" in str(raised.value) and str(part) in str(raised.value)
    assert (tmp_path / "file.txt").read_text() == "mine"
    assert part.read_text() == "arrived"  # kept, so nothing received is lost


def test_settle_with_force_replaces(part, tmp_path):
    (tmp_path / "file.txt").write_text("mine")
    client.settle_part(str(part), str(tmp_path / "file.txt"), force=True)
    assert (tmp_path / "file.txt").read_text() == "arrived"
    assert not part.exists()


def test_settle_without_hard_links_still_refuses_to_replace(part, tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(client.os, "link", no_links)  # as on FAT or some network mounts
    client.settle_part(str(part), str(tmp_path / "file.txt"), force=False)
    assert (tmp_path / "file.txt").read_text() == "arrived"
    again = tmp_path / "again.part"
    again.write_text("second")
    with pytest.raises(TransferError):
        client.settle_part(str(again), str(tmp_path / "file.txt"), force=False)
    assert (tmp_path / "file.txt").read_text() == "arrived"
