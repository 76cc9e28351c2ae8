"""Ingest bodies are parsed by orjson where it agrees with ``json``: the same values (so hits keep their
bytes), the same acceptance and the same error messages, except that NaN, Infinity, -Infinity and numbers
too large for a double are refused as invalid JSON on every ingest path."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock

from beater.ingest import parse_body
from beater.kafka.logic import classify
from beater.limits import Limits, NonFinite, decode, has_long_digits, loads
from beater.pipeline import Pipeline
from beater.sequence import Sequencer
from beater.service import Beater

ROOT = Path(__file__).resolve().parents[2]
CORPUS = [line for line in (ROOT / "examples/data/recentchange.ndjson").read_bytes().split(b"\n") if line.strip()]
EDGE_DOCS = [line for line in (ROOT / "tests/differential/edge_docs.ndjson").read_bytes().split(b"\n") if line.strip()]
ORIGIN = {"topic": "t", "partition": 0, "offset": 1}


def written(value: Any) -> str:
    """A value as ``json`` writes it into hits: tells 1 from 1.0, -0.0 from 0.0 and one key order from another."""
    return json.dumps(value, ensure_ascii=False)


def outcome(parse: Any, text: Any) -> Tuple[str, str]:
    """``("ok", the value as written)`` or ``(the error's type, its message)``."""
    try:
        return "ok", written(parse(text))
    except (ValueError, RecursionError) as e:
        return type(e).__name__, str(e)


class NonFiniteSeen(Exception):
    pass


def finite(literal: str) -> float:
    if math.isinf(float(literal)):
        raise NonFiniteSeen(literal)
    return float(literal)


def refuse(word: str) -> Any:
    raise NonFiniteSeen(word)


def reference(text: Any) -> Tuple[str, str]:
    """What ``json.loads`` makes of ``text``, a non-finite number being the refusal :func:`decode` gives."""
    try:
        return outcome(lambda t: json.loads(t, parse_constant=refuse, parse_float=finite), text)
    except NonFiniteSeen:
        return "NonFinite", "refused"


def decoded(text: Any) -> Tuple[str, str]:
    kind, result = outcome(decode, text)
    return ("NonFinite", "refused") if kind == "NonFinite" else (kind, result)


def test_every_recent_change_and_edge_document_parses_to_what_json_gives() -> None:
    for line in CORPUS + EDGE_DOCS:
        assert decoded(line) == reference(line)
        assert decoded(line.decode("utf-8")) == reference(line.decode("utf-8"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**200, max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=())),  # lone surrogates included
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans(), st.sampled_from([None, 2, (",", ":")]))
def test_any_json_value_parses_as_json_parses_it(value: Any, ascii_only: bool, layout: Any) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, **({"indent": layout} if layout == 2 else {"separators": layout}))
    assert decoded(text) == reference(text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate written raw: not bytes an ingest body can hold
    assert decoded(data) == reference(data)


JSONISH = st.text(st.sampled_from(list('{}[],:"\\ 0123456789.eE+-truefalsnNaIiy\t\n\r\ufeff\ud800é\x00\x0c')), max_size=40)


@settings(max_examples=2000)
@given(JSONISH)
def test_any_text_is_accepted_or_refused_with_json_s_own_message(text: str) -> None:
    """Nearly-JSON text: the value, or json's error (message, line, column) word for word."""
    assert decoded(text) == reference(text)


@given(st.lists(st.sampled_from(["-", "0", "1", "9", ".", "e", "E", "+"]), min_size=1, max_size=30).map("".join))
def test_any_number_reads_as_json_reads_it(number: str) -> None:
    for text in (number, f'{{"n": {number}}}', f"[{number}, {number}]"):
        assert decoded(text) == reference(text)


@pytest.mark.parametrize("number", [
    "18446744073709551615", "18446744073709551616", "-9223372036854775808", "-9223372036854775809",
    "123456789012345678901234567890", "1" + "0" * 400, "-0.0", "-0", "5e-324", "1e-400", "2.2250738585072014e-308",
    "1.7976931348623157e308", "0.1", "1E2", "1.0", "12345678901234567.5",
])
def test_numbers_json_reads_exactly_are_read_exactly(number: str) -> None:
    """orjson reads integers past 64 bits as floats: those go to json, and every value is json's."""
    text = f'{{"n": {number}, "in": [{number}]}}'
    assert decoded(text) == reference(text) and reference(text)[0] == "ok"


def test_a_run_of_19_digits_anywhere_sends_the_text_to_json() -> None:
    assert has_long_digits('{"n": 9223372036854775808}') and has_long_digits(b'{"s": "id 1234567890123456789"}')
    assert not has_long_digits('{"n": 922337203685477580, "t": 1700000000}')


def test_duplicate_keys_keep_the_last_value_in_the_first_key_s_place() -> None:
    text = '{"a": 1, "b": 2, "a": {"x": 3}}'
    assert written(decode(text)) == written(json.loads(text)) == '{"a": {"x": 3}, "b": 2}'


@pytest.mark.parametrize("depth", [100, 511, 600, 990, 1023, 1024, 1025, 5000])
def test_nesting_is_refused_where_json_refuses_it(depth: int) -> None:
    """orjson nests to 1024, json to Python's recursion limit: json decides, as max_depth did before."""
    text = "[" * depth + "]" * depth
    try:
        json.loads(text)
        json_refuses = False
    except RecursionError:
        json_refuses = True
    value, violation = loads(text)
    assert (violation is not None) == json_refuses and (value is None) == json_refuses
    assert violation is None or "too deeply to parse" in violation.message


@pytest.mark.parametrize("text", [
    '\ufeff{"a": 1}', '{"a": 1}\u00a0', ' \t\r\n{"a": 1}\r\n ', '{"a": "\x01"}', '{"a": 01}', '{"a": 1.}', '{"a": tru}',
    '{"a": "\\ud800"}', '{"a": "\\udc00\\ud800"}', '{"a": "\\ud83d\\ude00"}', '{"a": 1} x', '',
])
def test_texts_orjson_words_differently_get_json_s_words(text: str) -> None:
    assert decoded(text) == reference(text)
    assert decoded(text.encode("utf-8", "surrogatepass")) == reference(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("data", [b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32-le"),
                                  b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}'])
def test_bytes_json_decodes_are_decoded_as_json_decodes_them(data: bytes) -> None:
    """Kafka hands bytes: a BOM, UTF-16 and UTF-32 are taken, bad UTF-8 is a UnicodeDecodeError, as before."""
    assert decoded(data) == reference(data)


# --- NaN, Infinity, -Infinity, 1e400: invalid JSON on every path -----------------------------------

@pytest.mark.parametrize("literal, message", [
    ("NaN", "Expecting value"), ("Infinity", "Expecting value"), ("-Infinity", "Expecting value"),
    ("1e400", "Number out of range"), ("-1.5E999", "Number out of range"),
])
def test_a_non_finite_number_is_invalid_json_naming_its_position(literal: str, message: str) -> None:
    text = '{"s": "NaN Infinity 1e400", "n": [1, ' + literal + "]}"
    with pytest.raises(NonFinite) as error:
        decode(text)
    assert (error.value.msg, error.value.pos) == (message, text.index(literal, 30))
    assert isinstance(error.value, json.JSONDecodeError)


def test_over_http_an_ndjson_line_with_nan_is_that_line_s_error_naming_its_column() -> None:
    parsed = parse_body(b'{"n": 1}\n{"n": [1, NaN]}\n{"n": 3}\n', "i")
    assert [d.source for d in parsed.documents] == [{"n": 1}, {"n": 3}]
    assert [e.to_json() for e in parsed.errors] == [
        {"error": "estrom.error.invalid_document", "message": "invalid JSON: Expecting value at column 11", "line": 2}]


def test_over_http_a_single_document_with_infinity_is_refused() -> None:
    parsed = parse_body(b'{"n": Infinity}', "i")
    assert parsed.documents == [] and parsed.errors[0].message == "invalid JSON: Expecting value at column 7"


def test_over_http_an_array_item_with_nan_is_that_item_s_error_and_its_neighbours_go() -> None:
    parsed = parse_body(b'\n[\n {"n": 1},\n {"s": "NaN", "n": -Infinity},\n {"n": 3}\n]\n', "i")
    assert [d.source for d in parsed.documents] == [{"n": 1}, {"n": 3}]
    assert [(e.item, e.message) for e in parsed.errors] == [(1, "invalid JSON: Expecting value at line 4 column 20")]


def test_over_http_a_pretty_printed_document_with_1e400_names_its_line_and_column() -> None:
    parsed = parse_body(b'{\n  "a": 1,\n  "b": 1e400\n}\n', "i")
    assert parsed.documents == []
    assert [(e.line, e.message) for e in parsed.errors] == [(1, "invalid JSON: Number out of range at line 3 column 8")]


def test_over_kafka_a_record_with_nan_is_poison_naming_its_position() -> None:
    document, poison = classify(b'{"n": NaN}', "i", ORIGIN, 1 << 20)
    assert document is None and poison is not None
    assert (poison.reason, poison.message) == ("not_json", "invalid JSON: Expecting value: line 1 column 7 (char 6)")


def test_over_wamp_a_document_holding_nan_is_its_items_error() -> None:
    """WAMP hands decoded documents: NaN or an infinity cannot be written as JSON, so it is refused there too."""
    clock = Clock()

    async def publish(sub_id: str, hits: List[Any]) -> None:
        return None

    class Nothing:
        name = "nothing"
        incremental = False

        def percolate(self, index: str, documents: Any) -> Any:
            return succeed([[] for _ in documents])

    beater = Beater(Nothing(), Pipeline(Nothing(), publish, Sequencer(None), clock, batch_size=100))  # type: ignore[arg-type]
    d = ensureDeferred(beater.ingest_documents("i", [{"n": math.nan}, {"n": 2}, {"n": -math.inf}]))
    clock.advance(1)
    report: Any = []
    d.addCallback(report.append)
    assert report[0]["accepted"] == 1
    assert [e["item"] for e in report[0]["errors"]] == [0, 2]
    assert all("cannot be encoded as JSON" in e["message"] for e in report[0]["errors"])


def test_finite_numbers_near_the_edges_are_still_taken_everywhere() -> None:
    body = b'{"a": 1.7976931348623157e308, "b": 5e-324, "c": -0.0, "d": 1e-400, "e": 18446744073709551616}'
    [document] = parse_body(body, "i", Limits()).documents
    assert written(document.source) == written(json.loads(body))
    assert classify(body, "i", ORIGIN, 1 << 20)[0] is not None


def test_a_lone_surrogate_escape_is_still_that_line_s_error() -> None:
    """orjson refuses a lone surrogate; json reads it, and the document is refused as before (UTF-8 cannot carry it)."""
    parsed = parse_body(b'{"n": 1}\n{"s": "\\ud800"}\n{"s": "\\ud83d\\ude00"}\n', "i")
    assert [d.source for d in parsed.documents] == [{"n": 1}, {"s": "\U0001F600"}]
    assert [(e.line, "lone UTF-16 surrogate" in e.message) for e in parsed.errors] == [(2, True)]
