"""How request bodies become documents: every good item kept, every bad one named."""

from __future__ import annotations

import json

from beater.ingest import Incoming, parse_body


def test_single_object_is_one_document() -> None:
    """A JSON object body is one document."""
    parsed = parse_body(b'{"message": "hi"}', "events")
    assert parsed.documents == [Incoming({"message": "hi"})]
    assert parsed.errors == []


def test_array_gives_each_element() -> None:
    """A JSON array body gives its objects in order."""
    parsed = parse_body(b'[{"n": 1}, {"n": 2}]', "events")
    assert [d.source["n"] for d in parsed.documents] == [1, 2]


def test_array_element_that_is_not_an_object_is_reported_by_position() -> None:
    """A non-object array element is refused with its 0-based position; the others are kept."""
    parsed = parse_body(b'[{"n": 1}, 42, {"n": 3}]', "events")
    assert [d.source["n"] for d in parsed.documents] == [1, 3]
    assert [(e.item, e.line) for e in parsed.errors] == [(1, None)]


def test_ndjson_gives_one_document_per_line() -> None:
    """NDJSON bodies give one document per non-blank line."""
    body = b'{"n": 1}\n\n{"n": 2}\n'
    assert [d.source["n"] for d in parse_body(body, "events").documents] == [1, 2]


def test_bad_ndjson_line_is_reported_with_its_line_number() -> None:
    """A line that is not JSON is reported with its 1-based number; its neighbours are kept."""
    parsed = parse_body(b'{"n": 1}\n{oops\n{"n": 3}\n', "events")
    assert [d.source["n"] for d in parsed.documents] == [1, 3]
    assert [e.line for e in parsed.errors] == [2]
    assert "invalid JSON" in parsed.errors[0].message


def test_pretty_printed_object_whose_lines_are_not_values_is_one_document() -> None:
    """A body that is one object over several lines (its first line no JSON value by itself) is one document."""
    parsed = parse_body(b'{"n": 1,\n "m": {"k": [1,\n 2]}}\n', "events")
    assert parsed.documents == [Incoming({"n": 1, "m": {"k": [1, 2]}})]
    assert parsed.errors == []


def test_body_whose_first_line_is_a_whole_object_is_read_as_ndjson() -> None:
    """A first line that is a whole object makes the body NDJSON, so a broken later line costs only itself."""
    parsed = parse_body(b'{"n": 1}\n{"n": 2, "oops"\n{"n": 3}', "events")
    assert [d.source["n"] for d in parsed.documents] == [1, 3]
    assert [e.line for e in parsed.errors] == [2]


def test_envelope_is_unwrapped_and_keeps_its_id() -> None:
    """estrom's original envelope gives its _source and its _id."""
    body = json.dumps({"_index": "events", "_id": "abc", "_source": {"m": 1}}).encode()
    assert parse_body(body, "events").documents == [Incoming({"m": 1}, id="abc")]


def test_envelope_for_another_index_is_refused() -> None:
    """An envelope whose _index differs from the URL's index is refused, not misrouted."""
    body = json.dumps({"_index": "other", "_source": {"m": 1}}).encode()
    parsed = parse_body(body, "events")
    assert parsed.documents == []
    assert "does not match" in parsed.errors[0].message


def test_document_with_source_among_other_fields_is_not_an_envelope() -> None:
    """Only bodies made of envelope keys are envelopes; a document may have a _source field of its own."""
    body = json.dumps({"_source": {"m": 1}, "title": "t"}).encode()
    assert parse_body(body, "events").documents == [Incoming({"_source": {"m": 1}, "title": "t"})]


def test_empty_body_is_an_error() -> None:
    """An empty body is reported, not silently accepted."""
    parsed = parse_body(b"  \n", "events")
    assert parsed.documents == [] and len(parsed.errors) == 1


def test_non_utf8_body_is_an_error() -> None:
    """A body that is not UTF-8 is reported with the byte offset."""
    parsed = parse_body(b'{"m": "\xff"}', "events")
    assert parsed.documents == [] and "UTF-8" in parsed.errors[0].message
