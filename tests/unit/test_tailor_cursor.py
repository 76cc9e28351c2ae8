"""A tail's cursor: the last hit per Beater and a floor time, as an SSE id and a since=."""

from __future__ import annotations

import pytest

from tailor.cursor import Cursor, CursorError, parse_cursor


def test_the_text_of_a_cursor_reads_back_as_the_same_cursor() -> None:
    """What the Tailor writes as ``id:`` is what it reads from ``Last-Event-ID``."""
    cursor = Cursor({"3f2a9c1d": 4711, "b07e55aa": 980}, floor_ms=1_764_590_000_000)
    assert cursor.text() == "@1764590000000,3f2a9c1d:4711,b07e55aa:980"
    assert parse_cursor(cursor.text()) == cursor


def test_a_bare_small_number_is_one_seq_for_every_beater() -> None:
    """The event id of a single Beater, as tails wrote it before there were several."""
    cursor = parse_cursor("42")
    assert cursor == Cursor(any_seq=42)
    assert not cursor.is_fresh("any", 42) and cursor.is_fresh("any", 43)


def test_a_bare_large_number_is_a_floor_time() -> None:
    """Epoch milliseconds: every Beater is replayed from then."""
    cursor = parse_cursor("1764590000000")
    assert cursor == Cursor(floor_ms=1_764_590_000_000)
    assert cursor.since_for("b1", now_ms=0) == {"time_ms": 1_764_590_000_000}


def test_a_named_beater_resumes_after_its_seq_and_the_others_from_the_floor() -> None:
    """b1 after 10; b2, never heard from, from the time of the floor."""
    cursor = parse_cursor("@1764590000000,b1:10")
    assert cursor.since_for("b1", now_ms=0) == {"seq": 10}
    assert cursor.since_for("b2", now_ms=0) == {"time_ms": 1_764_590_000_000}


def test_without_a_floor_an_unnamed_beater_resumes_from_now() -> None:
    """A hand-made ``since=b1:10`` does not replay all of another Beater's store."""
    assert parse_cursor("b1:10").since_for("b2", now_ms=123) == {"time_ms": 123}


def test_freshness_and_advance_are_per_beater() -> None:
    """b1's hit 5 says nothing about b2's hit 3."""
    cursor = Cursor()
    cursor.advance("b1", 5)
    assert not cursor.is_fresh("b1", 5)
    assert cursor.is_fresh("b2", 3)
    cursor.advance("b1", 2)  # an older hit never moves a cursor back
    assert cursor.seqs == {"b1": 5}


@pytest.mark.parametrize("text", ["", "@", "@x", "b1:", "b1:x", ":5", "b 1:5", "b1:5,b1:6", "@1,@2", "1,2",
                                  "b1:99999999999999999999", "b1:\u00b2", "x" * 65 + ":1"])
def test_malformed_cursors_are_refused(text: str) -> None:
    """Every malformed form is a CursorError with a message, never a crash or a silent default."""
    with pytest.raises(CursorError) as raised:
        parse_cursor(text)
    assert str(raised.value)


def test_a_cursor_naming_too_many_beaters_is_refused() -> None:
    """A client cannot make the Tailor call thousands of procedures."""
    with pytest.raises(CursorError):
        parse_cursor(",".join(f"b{n}:1" for n in range(300)))
