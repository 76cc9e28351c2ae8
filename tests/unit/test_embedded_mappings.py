"""The embedded percolator under configured mappings: field models start from them, ids follow them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import pytest

from beater.mappings import IndexMapping, check_mapping, field_kinds
from beater.percolator.embedded import EmbeddedPercolator, QueryIndex
from beater.registration import Registration, make_registration
from tests.unit.deferreds import result


def configured(body: Mapping[str, Any], index: str = "logs") -> Dict[str, IndexMapping]:
    return {index: check_mapping(index, body)}


def matches(mappings: Mapping[str, IndexMapping], queries: Sequence[str], documents: Sequence[Any], index: str = "logs") -> List[List[str]]:
    """For each document, the (sorted) queries it matches in a QueryIndex under ``mappings``."""
    query_index = QueryIndex(mappings=mappings)
    kinds = field_kinds(mappings, index)
    by_id = {}
    for source in queries:
        registration = make_registration(index, source, "or", kinds)
        query_index.add(registration)
        by_id[registration.id] = source
    return [sorted(by_id[i] for i in ids) for ids in query_index.match_batch(index, list(documents))]


KEYWORD_USER = configured({"properties": {"user": {"type": "keyword"}, "title": {"type": "text"}}})


# --- QueryIndex -----------------------------------------------------------------------------------

def test_keyword_field_matches_case_sensitively() -> None:
    answer = matches(KEYWORD_USER, ["user:Foo", "user:foo"], [{"user": "Foo"}, {"user": "foo"}, {"user": "FOO"}])
    assert answer == [["user:Foo"], ["user:foo"], []]


def test_keyword_field_matches_the_whole_value_only() -> None:
    answer = matches(KEYWORD_USER, ["user:Foo", 'user:"Foo Bar"'], [{"user": "Foo Bar"}, {"user": "Foo"}])
    assert answer == [['user:"Foo Bar"'], ["user:Foo"]]


def test_prefix_on_a_keyword_field_is_case_sensitive() -> None:
    assert matches(KEYWORD_USER, ["user:Fo*"], [{"user": "Foo"}, {"user": "foo"}]) == [["user:Fo*"], []]


def test_configured_text_field_matches_any_case() -> None:
    assert matches(KEYWORD_USER, ["title:foo"], [{"title": "FOO bar"}]) == [["title:foo"]]


def test_any_field_matches_a_keyword_field_only_in_its_case() -> None:
    answer = matches(KEYWORD_USER, ["Foo", "foo"], [{"user": "Foo"}, {"user": "foo"}, {"title": "FOO"}])
    assert answer == [["Foo"], ["foo"], ["Foo", "foo"]]


def test_ignore_above_keeps_values_of_that_length_and_drops_longer() -> None:
    mappings = configured({"properties": {"user": {"type": "keyword", "ignore_above": 3}}})
    answer = matches(mappings, ["user:Foo", "user:Food", "_exists_:user"], [{"user": "Foo"}, {"user": "Food"}])
    assert answer == [["_exists_:user", "user:Foo"], []]


def test_ignore_above_counts_characters_outside_the_bmp_twice_as_elasticsearch_does() -> None:
    short = configured({"properties": {"user": {"type": "keyword", "ignore_above": 4}}})
    assert matches(short, ["_exists_:user"], [{"user": "\U0001F600\U0001F600"}, {"user": "\U0001F600\U0001F600x"}]) == [["_exists_:user"], []]


def test_ignore_above_applies_per_value_of_an_array() -> None:
    mappings = configured({"properties": {"user": {"type": "keyword", "ignore_above": 3}}})
    assert matches(mappings, ["user:Foo", "user:Food"], [{"user": ["Food", "Foo"]}]) == [["user:Foo"]]


def test_ignore_above_of_a_text_keyword_sub_field_leaves_the_text_field_alone() -> None:
    mappings = configured({"properties": {"t": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 3}}}}})
    answer = matches(mappings, ["t.keyword:Foo", "t.keyword:Food", "t:food"], [{"t": "Foo"}, {"t": "Food"}])
    assert answer == [["t.keyword:Foo"], ["t:food"]]


def test_keyword_without_ignore_above_keeps_a_long_value() -> None:
    value = "v" * 1000
    assert matches(KEYWORD_USER, [f"user:{value}"], [{"user": value}]) == [[f"user:{value}"]]


def test_keyword_sub_field_of_a_text_field_without_ignore_above_keeps_a_long_value() -> None:
    value = "w" * 1000
    mappings = configured({"properties": {"t": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}})
    assert matches(mappings, [f"t.keyword:{value}"], [{"t": value}]) == [[f"t.keyword:{value}"]]


def test_configured_ignore_above_is_in_the_field_model() -> None:
    index = QueryIndex(mappings=configured({"properties": {"user": {"type": "keyword", "ignore_above": 3}, "name": {"type": "keyword"}}}))
    assert index.model("logs").ignore_above == {"user": 3, "name": None}


DYNAMIC_FALSE = configured({"dynamic": False, "properties": {"user": {"type": "keyword"}}})


def test_under_dynamic_false_a_field_the_mapping_does_not_name_never_matches() -> None:
    answer = matches(DYNAMIC_FALSE, ["other:x", "x", "other.keyword:x", "_exists_:other"], [{"other": "x"}, {"other": "x", "user": "x"}])
    assert answer == [[], ["x"]]


def test_under_dynamic_false_the_field_model_does_not_grow() -> None:
    seen: List[str] = []
    index = QueryIndex(on_model_change=lambda name, properties: seen.append(name), mappings=DYNAMIC_FALSE)
    index.match_batch("logs", [{"other": "x", "n": 1, "o": {"a": "b"}}])
    assert index.model("logs").types == {"user": "keyword"} and seen == []


def test_under_dynamic_true_unnamed_fields_are_mapped_dynamically() -> None:
    index = QueryIndex(mappings=KEYWORD_USER)
    index.match_batch("logs", [{"other": "X", "n": 1}])
    types = index.model("logs").types
    assert types["other"] == "text" and types["other.keyword"] == "keyword" and types["n"] == "long"
    assert types["user"] == "keyword" and "user.keyword" not in types


def test_under_dynamic_true_unnamed_fields_match_as_text_and_keyword() -> None:
    answer = matches(KEYWORD_USER, ["other:x", "other.keyword:X", "other.keyword:x"], [{"other": "X"}])
    assert answer == [["other.keyword:X", "other:x"]]


def test_dynamic_keyword_sub_fields_under_a_configured_mapping_keep_ignore_above_256() -> None:
    long_value = "u" * 257
    answer = matches(KEYWORD_USER, [f"other.keyword:{long_value}", "other.keyword:short"], [{"other": [long_value, "short"]}])
    assert answer == [["other.keyword:short"]]


def test_a_document_value_of_another_type_than_configured_is_left_out() -> None:
    mappings = configured({"properties": {"n": {"type": "long"}}})
    assert matches(mappings, ["n:5", "_exists_:n"], [{"n": "five"}, {"n": "5"}]) == [[], ["_exists_:n", "n:5"]]


def test_index_without_configuration_keeps_dynamic_mapping() -> None:
    index = QueryIndex(mappings=KEYWORD_USER)
    index.match_batch("wiki", [{"user": "Foo"}])
    assert index.model("wiki").types == {"user": "text", "user.keyword": "keyword"}


def test_configured_properties_are_not_changed_by_growth() -> None:
    mappings = configured({"properties": {"o": {"properties": {"a": {"type": "keyword"}}}}})
    before = json.dumps(mappings["logs"].to_json(), sort_keys=True)
    QueryIndex(mappings=mappings).match_batch("logs", [{"o": {"b": "x"}, "z": 1}])
    assert json.dumps(mappings["logs"].to_json(), sort_keys=True) == before


# --- EmbeddedPercolator: mapping changes between starts -------------------------------------------

TEXT_USER = configured({"properties": {"user": {"type": "text"}}})


def start(path: Path, mappings: Mapping[str, IndexMapping]) -> EmbeddedPercolator:
    percolator = EmbeddedPercolator(path, mappings=mappings)
    result(percolator.start())
    return percolator


def registered(path: Path, mappings: Mapping[str, IndexMapping], source: str, index: str = "logs") -> Registration:
    """``source`` registered in a percolator on ``path`` under ``mappings``, then stopped."""
    percolator = start(path, mappings)
    registration = make_registration(index, source, "or", field_kinds(mappings, index))
    assert result(percolator.register(registration)) is True
    result(percolator.stop())
    return registration


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "registrations.sqlite3"


def test_registration_made_under_another_mapping_gets_its_new_id_at_start(path: Path) -> None:
    old = registered(path, TEXT_USER, "user:Foo")
    new = make_registration("logs", "user:Foo", "or", field_kinds(KEYWORD_USER, "logs"))
    percolator = start(path, KEYWORD_USER)
    assert new.id != old.id and percolator.remapped == {old.id: new.id}
    assert result(percolator.lookup(old.id)) is None
    assert result(percolator.lookup(new.id)) == new
    result(percolator.stop())


def test_remapped_registration_matches_as_the_new_mapping_says(path: Path) -> None:
    old = registered(path, TEXT_USER, "user:Foo")
    percolator = start(path, KEYWORD_USER)
    new_id = percolator.remapped[old.id]
    answer = result(percolator.percolate("logs", [{"user": "foo"}, {"user": "Foo"}, {"user": "Foo bar"}]))
    assert answer == [[], [new_id], []]
    result(percolator.stop())


def test_remapped_registration_is_stored_once_under_its_new_id(path: Path) -> None:
    old = registered(path, TEXT_USER, "user:Foo")
    percolator = start(path, KEYWORD_USER)
    new = make_registration("logs", "user:Foo", "or", field_kinds(KEYWORD_USER, "logs"))
    assert result(percolator.register(new)) is False
    assert len(percolator.index) == 1
    result(percolator.stop())
    rows = sqlite3.connect(path).execute("SELECT id FROM registrations").fetchall()
    assert rows == [(new.id,)] and new.id != old.id


def test_restarting_under_the_same_mapping_remaps_nothing(path: Path) -> None:
    old = registered(path, TEXT_USER, "user:Foo")
    result(start(path, KEYWORD_USER).stop())
    again = start(path, KEYWORD_USER)
    new_id = make_registration("logs", "user:Foo", "or", field_kinds(KEYWORD_USER, "logs")).id
    assert again.remapped == {}
    assert result(again.lookup(new_id)) is not None and result(again.lookup(old.id)) is None
    result(again.stop())


def test_registration_made_under_dynamic_mapping_is_remapped_when_a_mapping_is_configured(path: Path) -> None:
    old = registered(path, {}, "user:Foo")
    percolator = start(path, KEYWORD_USER)
    new = make_registration("logs", "user:Foo", "or", field_kinds(KEYWORD_USER, "logs"))
    assert percolator.remapped == {old.id: new.id}
    assert result(percolator.lookup(new.id)) == new
    result(percolator.stop())


def test_registration_goes_back_to_its_dynamic_id_when_the_mapping_is_removed(path: Path) -> None:
    old = registered(path, KEYWORD_USER, "user:Foo")
    percolator = start(path, {})
    dynamic = make_registration("logs", "user:Foo")
    assert percolator.remapped == {old.id: dynamic.id}
    assert result(percolator.percolate("logs", [{"user": "FOO"}])) == [[dynamic.id]]
    result(percolator.stop())


def test_registrations_of_indexes_whose_mapping_did_not_change_keep_their_ids(path: Path) -> None:
    wiki = registered(path, KEYWORD_USER, "title:cat", index="wiki")
    logs = registered(path, KEYWORD_USER, "user:Foo")
    percolator = start(path, KEYWORD_USER)
    assert percolator.remapped == {}
    assert result(percolator.lookup(wiki.id)) == wiki and result(percolator.lookup(logs.id)) == logs
    result(percolator.stop())


def test_remap_keeps_the_query_as_written_and_its_default_operator(path: Path) -> None:
    percolator = start(path, TEXT_USER)
    old = make_registration("logs", "user:(Foo Bar)", "and", field_kinds(TEXT_USER, "logs"))
    result(percolator.register(old))
    result(percolator.stop())
    percolator = start(path, KEYWORD_USER)
    new = result(percolator.lookup(percolator.remapped[old.id]))
    assert (new.source, new.default_operator, new.mapping) == ("user:(Foo Bar)", "and", KEYWORD_USER["logs"].tag)
    result(percolator.stop())


def test_field_model_grown_under_another_mapping_is_not_loaded(path: Path) -> None:
    percolator = start(path, {})
    result(percolator.percolate("logs", [{"user": "Foo"}]))  # user becomes text with .keyword
    result(percolator.stop())
    percolator = start(path, KEYWORD_USER)
    assert percolator.index.model("logs").types == {"user": "keyword", "title": "text"}
    result(percolator.stop())


def test_field_model_grown_under_the_same_mapping_is_loaded(path: Path) -> None:
    percolator = start(path, KEYWORD_USER)
    result(percolator.percolate("logs", [{"n": 5}]))  # n becomes a long
    result(percolator.stop())
    percolator = start(path, KEYWORD_USER)
    assert percolator.index.model("logs").types["n"] == "long"
    registration = make_registration("logs", "n:5", "or", field_kinds(KEYWORD_USER, "logs"))
    result(percolator.register(registration))
    assert result(percolator.percolate("logs", [{"n": "5"}])) == [[registration.id]]  # "5" coerced into the long
    result(percolator.stop())


def test_a_field_model_from_another_mapping_is_replaced_once_so_the_warning_is_not_repeated(path: Path) -> None:
    strict = configured({"dynamic": False, "properties": {"user": {"type": "keyword"}}})
    percolator = start(path, {})
    result(percolator.percolate("logs", [{"user": "Foo"}]))
    result(percolator.stop())
    result(start(path, strict).stop())
    rows = dict(sqlite3.connect(path).execute("SELECT idx, mapping FROM field_models").fetchall())
    assert rows == {"logs": strict["logs"].tag}


def test_field_model_is_stored_with_its_mapping_tag(path: Path) -> None:
    percolator = start(path, KEYWORD_USER)
    result(percolator.percolate("logs", [{"n": 5}]))
    result(percolator.percolate("wiki", [{"n": 5}]))
    result(percolator.stop())
    rows = dict(sqlite3.connect(path).execute("SELECT idx, mapping FROM field_models").fetchall())
    assert rows == {"logs": KEYWORD_USER["logs"].tag, "wiki": ""}


# --- stores written before mappings could be configured -------------------------------------------

OLD_SCHEMA = """
CREATE TABLE registrations (
    id TEXT PRIMARY KEY,
    idx TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE TABLE field_models (
    idx TEXT PRIMARY KEY,
    properties TEXT NOT NULL
);
"""


def old_store(path: Path, models: Mapping[str, Any], registrations: Sequence[Registration] = ()) -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for index, properties in models.items():
        db.execute("INSERT INTO field_models (idx, properties) VALUES (?, ?)", (index, json.dumps(properties)))
    for registration in registrations:
        db.execute(
            "INSERT INTO registrations (id, idx, data) VALUES (?, ?, ?)",
            (registration.id, registration.index, json.dumps(registration.to_json())),
        )
    db.commit()
    db.close()


def test_store_of_the_old_schema_opens_and_keeps_its_field_model(path: Path) -> None:
    registration = make_registration("rc", "n:5")
    old_store(path, {"rc": {"n": {"type": "long"}}}, [registration])
    percolator = start(path, {})
    assert percolator.index.model("rc").types == {"n": "long"}
    assert percolator.remapped == {}
    assert result(percolator.percolate("rc", [{"n": "5"}])) == [[registration.id]]  # "5" coerced: n is still a long
    result(percolator.stop())


def test_store_of_the_old_schema_gains_the_mapping_column(path: Path) -> None:
    old_store(path, {"rc": {"n": {"type": "long"}}})
    result(start(path, {}).stop())
    db = sqlite3.connect(path)
    assert "mapping" in {row[1] for row in db.execute("PRAGMA table_info(field_models)")}
    assert db.execute("SELECT idx, properties, mapping FROM field_models").fetchall() == [("rc", '{"n": {"type": "long"}}', "")]


def test_store_of_the_old_schema_opens_again_after_its_upgrade(path: Path) -> None:
    old_store(path, {"rc": {"n": {"type": "long"}}})
    result(start(path, {}).stop())
    percolator = start(path, {})
    assert percolator.index.model("rc").types == {"n": "long"}
    result(percolator.stop())


def test_old_store_model_of_an_index_now_configured_is_not_loaded(path: Path) -> None:
    old_store(path, {"logs": {"user": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}})
    percolator = start(path, KEYWORD_USER)
    assert percolator.index.model("logs").types == {"user": "keyword", "title": "text"}
    result(percolator.stop())
