"""Every document limit is that document's error, naming the limit; every request limit is a 413 naming it."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest

from beater.errors import LimitExceeded
from beater.ingest import ParsedBody, parse_body
from beater.limits import Limits, check_document, shape, value_end

DEEP = '{"a":' * 100_000 + "1" + "}" * 100_000


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def errors(parsed: ParsedBody) -> List[Dict[str, Any]]:
    return [e.to_json() for e in parsed.errors]


def test_a_document_100000_levels_deep_between_good_ndjson_lines_is_refused_alone() -> None:
    parsed = parse_body(('{"t": 1}\n' + DEEP + '\n{"t": 2}\n').encode(), "i")
    assert [d.source for d in parsed.documents] == [{"t": 1}, {"t": 2}]
    assert parsed.positions == [{"line": 1}, {"line": 3}]
    [error] = errors(parsed)
    assert (error["error"], error["line"], error["limit"], error["value"]) == ("estrom.error.limit_exceeded", 2, "max_depth", 100)


def test_a_document_100000_levels_deep_in_an_array_is_refused_alone() -> None:
    parsed = parse_body(('[{"t": 1}, ' + DEEP + ', {"t": 2}]').encode(), "i")
    assert [d.source for d in parsed.documents] == [{"t": 1}, {"t": 2}]
    assert [(e["item"], e["limit"]) for e in errors(parsed)] == [(1, "max_depth")]


def test_a_body_that_is_one_document_100000_levels_deep_is_its_error() -> None:
    assert [(e["line"], e["limit"]) for e in errors(parse_body(DEEP.encode(), "i"))] == [(1, "max_depth")]


def test_a_pretty_printed_document_too_deep_to_parse_is_one_error() -> None:
    body = ('{"t": 1,\n "deep": ' + DEEP + "\n}").encode()
    assert [(e["line"], e["limit"]) for e in errors(parse_body(body, "i"))] == [(1, "max_depth")]


def test_one_level_past_max_depth_is_refused_and_says_how_deep() -> None:
    [error] = errors(parse_body(nested(101).encode(), "i"))
    assert error["limit"] == "max_depth" and "101 levels" in error["message"]


def test_a_document_at_max_depth_is_accepted() -> None:
    assert len(parse_body(nested(100).encode(), "i").documents) == 1


def test_arrays_count_as_levels() -> None:
    body = json.dumps({"a": [[[["x"]]]]}).encode()
    assert errors(parse_body(body, "i", Limits(max_depth=4)))[0]["limit"] == "max_depth"
    assert parse_body(body, "i", Limits(max_depth=5)).documents


def test_more_distinct_fields_than_max_fields_are_refused() -> None:
    body = json.dumps({f"f{i}": i for i in range(11)}).encode()
    [error] = errors(parse_body(body, "i", Limits(max_fields=10)))
    assert (error["limit"], error["value"]) == ("max_fields", 10)


def test_array_elements_share_their_field_paths() -> None:
    body = json.dumps({"items": [{"a": i, "b": i} for i in range(100)]}).encode()
    assert parse_body(body, "i", Limits(max_fields=3)).documents  # items, items.a, items.b


def test_an_array_item_over_max_document_bytes_is_refused_alone() -> None:
    body = json.dumps([{"x": "y" * 2000}, {"ok": 1}]).encode()
    parsed = parse_body(body, "i", Limits(max_document_bytes=1000))
    assert [d.source for d in parsed.documents] == [{"ok": 1}]
    assert [(e["item"], e["limit"], e["value"]) for e in errors(parsed)] == [(0, "max_document_bytes", 1000)]


def test_document_bytes_are_utf8_bytes_not_characters() -> None:
    body = json.dumps({"x": "é" * 600}, ensure_ascii=False).encode()  # 600 characters, 1200 bytes
    assert errors(parse_body(body, "i", Limits(max_document_bytes=1000)))[0]["limit"] == "max_document_bytes"


def test_an_ndjson_line_over_max_line_bytes_is_refused_alone() -> None:
    body = ('{"ok": 1}\n' + json.dumps({"x": "y" * 2000}) + '\n{"ok": 2}\n').encode()
    parsed = parse_body(body, "i", Limits(max_line_bytes=1000))
    assert [d.source for d in parsed.documents] == [{"ok": 1}, {"ok": 2}]
    assert [(e["line"], e["limit"]) for e in errors(parsed)] == [(2, "max_line_bytes")]


def test_a_single_document_body_over_max_document_bytes_names_the_document_limit() -> None:
    body = json.dumps({"x": "y" * 2000}).encode()
    assert errors(parse_body(body, "i", Limits(max_document_bytes=1000, max_line_bytes=500)))[0]["limit"] == "max_document_bytes"


def test_more_ndjson_lines_than_max_docs_per_request_is_413() -> None:
    with pytest.raises(LimitExceeded) as caught:
        parse_body(b'{"n": 1}\n{"n": 2}\n{"n": 3}\n', "i", Limits(max_docs_per_request=2))
    assert caught.value.http_status == 413
    assert caught.value.to_json()["limit"] == "max_docs_per_request" and caught.value.to_json()["value"] == 2


def test_more_array_items_than_max_docs_per_request_is_413() -> None:
    with pytest.raises(LimitExceeded, match="max_docs_per_request"):
        parse_body(b'[{"n": 1}, {"n": 2}, {"n": 3}]', "i", Limits(max_docs_per_request=2))


def test_exactly_max_docs_per_request_is_accepted() -> None:
    assert len(parse_body(b'[{"n": 1}, {"n": 2}]', "i", Limits(max_docs_per_request=2)).documents) == 2


def test_a_body_over_max_body_bytes_is_413() -> None:
    with pytest.raises(LimitExceeded) as caught:
        parse_body(b'{"n": 12345}', "i", Limits(max_body_bytes=5))
    assert (caught.value.http_status, caught.value.limit, caught.value.value) == (413, "max_body_bytes", 5)


def test_a_line_separator_inside_a_string_does_not_split_an_ndjson_line() -> None:
    parsed = parse_body('{"t": "a\u2028b"}\n{"n": 2}\n'.encode(), "i")
    assert [d.source for d in parsed.documents] == [{"t": "a\u2028b"}, {"n": 2}]


def test_an_array_with_a_syntax_error_is_still_reported_as_its_line() -> None:
    [error] = errors(parse_body(b'[{"a": 1}, {oops}]', "i"))
    assert error["error"] == "estrom.error.invalid_document" and error["line"] == 1


def test_shape_walks_100000_levels_without_recursion_and_stops_past_the_cutoff() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = {"a": value}
    assert shape(value, 100, 1000)[0] == 101
    assert shape([[[[1]]]], 10, 10) == (4, 0)


def test_brackets_and_colons_inside_strings_do_not_make_a_document_too_deep() -> None:
    text = json.dumps({"t": "[[[[{{{{::::"})
    assert check_document(json.loads(text), Limits(max_depth=2, max_fields=2), len(text), text) is None


def test_value_end_skips_brackets_in_strings_and_escaped_quotes() -> None:
    text = '{"a": "}\\"]", "b": [1, {"c": "{"}]} tail'
    assert text[: value_end(text, 0)] == text[: text.index(" tail")]


def test_kafka_can_check_a_record_from_its_bytes() -> None:
    from beater.limits import loads

    value = DEEP.encode()
    decoded, violation = loads(value)
    assert decoded is None and violation is not None and (violation.reason, violation.limit) == ("too_deep", "max_depth")
    many = json.dumps({f"f{i}": i for i in range(1001)}).encode()
    over = check_document(json.loads(many), Limits(), len(many), many)
    assert over is not None and over.reason == "too_many_fields"
    assert check_document({"ok": 1}, Limits(), 9, b'{"ok": 1}') is None


# --- found by the fuzz run ----------------------------------------------------------------------

def test_a_number_of_more_digits_than_python_converts_is_that_lines_error() -> None:
    """json refuses integers over 4,300 digits with a ValueError; the good neighbours still go."""
    body = b'{"good": 1}\n{"n": ' + b"9" * 5000 + b'}\n{"good": 2}\n'
    parsed = parse_body(body, "i")
    assert [d.source for d in parsed.documents] == [{"good": 1}, {"good": 2}]
    [error] = parsed.errors
    assert error.line == 2 and "digits" in error.message and "sys." not in error.message


def test_a_huge_number_in_an_array_is_that_items_error() -> None:
    """Item by item, as for a document too deep."""
    body = b'[{"good": 1}, {"n": ' + b"9" * 5000 + b'}, {"good": 2}]'
    parsed = parse_body(body, "i")
    assert [d.source for d in parsed.documents] == [{"good": 1}, {"good": 2}]
    assert [e.item for e in parsed.errors] == [1]


def test_a_lone_surrogate_is_that_documents_error() -> None:
    """"\\ud800" is valid JSON that no UTF-8 writer can carry: refused at ingest, not at publish."""
    parsed = parse_body(b'{"good": 1}\n{"a": "\\ud800"}\n{"pair": "\\ud83d\\ude00"}\n', "i")
    assert [d.source for d in parsed.documents] == [{"good": 1}, {"pair": "\U0001F600"}]
    [error] = parsed.errors
    assert error.line == 2 and "surrogate" in error.message


def test_a_line_that_is_not_utf8_costs_only_itself() -> None:
    """NDJSON is read line by line also when one line holds an invalid byte."""
    parsed = parse_body(b'{"good": 4}\n{"a": "\xff"}\n{"good": 5}\n', "i")
    assert [d.source for d in parsed.documents] == [{"good": 4}, {"good": 5}]
    [error] = parsed.errors
    assert error.line == 2 and "UTF-8" in error.message


def test_ndjson_whose_first_line_is_an_array_is_still_read_line_by_line_around_a_bad_byte() -> None:
    """``[]`` on a line of its own is an NDJSON item (refused: not an object), not the start of an array."""
    parsed = parse_body(b'[]\n{"a": "\xff"}\n{"good": 1}\n', "i")
    assert [d.source for d in parsed.documents] == [{"good": 1}]
    assert [e.line for e in parsed.errors] == [1, 2]


def test_a_pretty_printed_array_with_a_bad_byte_is_refused_whole() -> None:
    """Its lines are no documents by themselves: none of them may slip through."""
    parsed = parse_body(b'[\n  {"a": "\xff"},\n  {"good": 1}\n]\n', "i")
    assert parsed.documents == [] and len(parsed.errors) == 1 and "not UTF-8" in parsed.errors[0].message
