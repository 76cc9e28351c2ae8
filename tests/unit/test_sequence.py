"""Sequence numbers grow per index and never repeat, even across restarts."""

from __future__ import annotations

from pathlib import Path

from beater.sequence import Sequencer


def test_numbers_are_consecutive_per_index() -> None:
    """Each index counts on its own, from 1."""
    seq = Sequencer(None)
    assert seq.take("a", 3) == 1
    assert seq.take("a", 2) == 4
    assert seq.take("b", 1) == 1


def test_restart_continues_after_the_reserved_block(tmp_path: Path) -> None:
    """A restarted sequencer never hands out a number already used."""
    path = tmp_path / "seq.json"
    first = Sequencer(path, block=10)
    used = [first.take("a", 1) for _ in range(25)]
    second = Sequencer(path, block=10)
    assert second.take("a", 1) > max(used)


def test_corrupt_file_is_reported(tmp_path: Path) -> None:
    """A corrupt sequence file is a clear error naming the file."""
    path = tmp_path / "seq.json"
    path.write_text("{not json")
    try:
        Sequencer(path)
    except RuntimeError as e:
        assert str(path) in str(e)
    else:
        raise AssertionError("corrupt file accepted")


def test_a_beater_keeps_its_id_across_restarts(tmp_path: Path) -> None:
    """The id that qualifies the numbers is written with them and read back."""
    path = tmp_path / "seq.json"
    first = Sequencer(path)
    assert Sequencer(path).beater_id == first.beater_id


def test_a_new_sequence_file_means_a_new_beater_id(tmp_path: Path) -> None:
    """Numbers that start again at 1 come under another id, so an old cursor cannot skip them."""
    first = Sequencer(tmp_path / "a.json")
    second = Sequencer(tmp_path / "b.json")
    assert first.beater_id != second.beater_id
    assert second.take("i", 1) == 1


def test_a_file_from_before_beater_ids_keeps_its_numbers(tmp_path: Path) -> None:
    """The old ``{index: reserved}`` file still continues after its blocks, and gets an id."""
    path = tmp_path / "seq.json"
    path.write_text('{"a": 500}')
    seq = Sequencer(path)
    assert seq.take("a", 1) == 500
    assert Sequencer(path).beater_id == seq.beater_id
