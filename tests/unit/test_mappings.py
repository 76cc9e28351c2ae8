"""Configured mappings: what is accepted, what is refused (and said where), their tag and their field kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest

from beater.mappings import IndexMapping, MappingError, check_mapping, field_kinds, load_mappings
from beater.query.kinds import DYNAMIC

TITLE = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}


def props(**fields: Any) -> Dict[str, Any]:
    return {"properties": fields}


def refusal(body: Any, index: str = "logs") -> str:
    """The message check_mapping refuses ``body`` with."""
    with pytest.raises(MappingError) as caught:
        check_mapping(index, body)
    return str(caught.value)


# --- accepted shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    TITLE,
    {"type": "text"},
    {"type": "text", "analyzer": "standard", "search_analyzer": "standard", "search_quote_analyzer": "standard"},
    {"type": "keyword"},
    {"type": "keyword", "ignore_above": 20},
    {"type": "keyword", "ignore_above": 0},
    {"type": "long"},
    {"type": "long", "coerce": True, "ignore_malformed": True},
    {"type": "float"},
    {"type": "date"},
    {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
    {"type": "boolean"},
    {"type": "object", "properties": {"name": {"type": "keyword"}}},
    {"properties": {"inner": {"properties": {"deep": {"type": "long"}}}}},
    {"type": "keyword", "doc_values": False, "store": True, "eager_global_ordinals": True},
    {"type": "text", "norms": False, "similarity": "BM25"},
])
def test_supported_field_shapes_are_accepted(spec: Dict[str, Any]) -> None:
    mapping = check_mapping("logs", props(field=spec))
    assert isinstance(mapping, IndexMapping) and mapping.properties == {"field": spec}


def test_dynamic_defaults_to_true_and_takes_false() -> None:
    assert check_mapping("logs", props(user={"type": "keyword"})).dynamic is True
    assert check_mapping("logs", {"dynamic": False, **props(user={"type": "keyword"})}).dynamic is False


def test_dynamic_as_a_string_is_read_as_the_boolean() -> None:
    assert check_mapping("logs", {"dynamic": "false"}).dynamic is False
    assert check_mapping("logs", {"dynamic": "true"}).tag == check_mapping("logs", {"dynamic": True}).tag


def test_an_empty_mapping_is_accepted() -> None:
    mapping = check_mapping("logs", {})
    assert (mapping.dynamic, dict(mapping.properties)) == (True, {})


# --- refusals name the index, the field path and the parameter -------------------------------------

@pytest.mark.parametrize("kind", ["geo_point", "integer", "nested", "wildcard", "match_only_text", "flattened"])
def test_unsupported_type_is_refused_naming_field_and_type(kind: str) -> None:
    message = refusal(props(where={"type": kind}))
    assert "'logs'" in message and "'where'" in message and repr(kind) in message


def test_unsupported_type_in_a_nested_object_names_the_full_path() -> None:
    message = refusal(props(geo={"properties": {"location": {"properties": {"point": {"type": "geo_point"}}}}}))
    assert "'geo.location.point'" in message and "geo_point" in message


@pytest.mark.parametrize("parameter", ["analyzer", "search_analyzer", "search_quote_analyzer"])
def test_analyzer_other_than_standard_is_refused(parameter: str) -> None:
    message = refusal(props(title={"type": "text", parameter: "english"}))
    assert "'title'" in message and parameter in message and "'english'" in message


def test_keyword_normalizer_is_refused() -> None:
    message = refusal(props(user={"type": "keyword", "normalizer": "lowercase"}))
    assert "'user'" in message and "'normalizer'" in message


def test_date_with_a_custom_format_is_refused() -> None:
    message = refusal(props(day={"type": "date", "format": "yyyy/MM/dd"}))
    assert "'day'" in message and "format" in message and "'yyyy/MM/dd'" in message


@pytest.mark.parametrize("kind", ["long", "float"])
def test_coerce_false_is_refused(kind: str) -> None:
    message = refusal(props(n={"type": kind, "coerce": False}))
    assert "'n'" in message and "coerce" in message


def test_ignore_malformed_false_is_refused() -> None:
    message = refusal(props(day={"type": "date", "ignore_malformed": False}))
    assert "'day'" in message and "ignore_malformed" in message


def test_sub_field_other_than_keyword_is_refused() -> None:
    message = refusal(props(title={"type": "text", "fields": {"raw": {"type": "keyword"}}}))
    assert "'title'" in message and "sub-field" in message


def test_keyword_sub_field_of_another_type_is_refused() -> None:
    message = refusal(props(title={"type": "text", "fields": {"keyword": {"type": "text"}}}))
    assert "'title'" in message and "sub-field 'keyword'" in message


def test_keyword_sub_field_with_a_normalizer_is_refused() -> None:
    message = refusal(props(title={"type": "text", "fields": {"keyword": {"type": "keyword", "normalizer": "lowercase"}}}))
    assert "'title.keyword'" in message and "'normalizer'" in message


def test_sub_fields_on_a_keyword_field_are_refused() -> None:
    message = refusal(props(user={"type": "keyword", "fields": {"text": {"type": "text"}}}))
    assert "'user'" in message and "'fields'" in message


@pytest.mark.parametrize("value", [-1, "256", 2.5, True])
def test_ignore_above_must_be_a_non_negative_integer(value: Any) -> None:
    message = refusal(props(user={"type": "keyword", "ignore_above": value}))
    assert "'user'" in message and "ignore_above" in message


def test_ignore_above_of_the_keyword_sub_field_is_checked_too() -> None:
    message = refusal(props(title={"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": -5}}}))
    assert "'title.keyword'" in message and "ignore_above" in message


def test_dotted_field_name_is_refused() -> None:
    message = refusal(props(**{"user.name": {"type": "keyword"}}))
    assert "'user.name'" in message and "dots" in message


def test_estrom_internal_name_is_refused() -> None:
    message = refusal(props(**{"@estrom_seq": {"type": "long"}}))
    assert "'@estrom_seq'" in message and "@estrom_" in message


@pytest.mark.parametrize("dynamic", ["strict", "runtime", 1, None])
def test_dynamic_other_than_true_or_false_is_refused(dynamic: Any) -> None:
    message = refusal({"dynamic": dynamic, **props(user={"type": "keyword"})})
    assert "'logs'" in message and "'dynamic'" in message


@pytest.mark.parametrize("key", ["_source", "date_detection", "runtime", "mappings"])
def test_unknown_top_level_key_is_refused(key: str) -> None:
    message = refusal({key: {}, **props(user={"type": "keyword"})})
    assert "'logs'" in message and repr(key) in message


@pytest.mark.parametrize("body", [[], "keyword", None, {"properties": []}, {"properties": {"user": "keyword"}}])
def test_a_mapping_that_is_not_made_of_objects_is_refused(body: Any) -> None:
    assert "'logs'" in refusal(body)


# --- tag ------------------------------------------------------------------------------------------

def test_tag_is_the_same_for_keys_written_in_another_order() -> None:
    one = {"dynamic": False, "properties": {"user": {"type": "keyword", "ignore_above": 20}, "title": TITLE}}
    other = {
        "properties": {
            "title": {"fields": {"keyword": {"ignore_above": 256, "type": "keyword"}}, "type": "text"},
            "user": {"ignore_above": 20, "type": "keyword"},
        },
        "dynamic": False,
    }
    assert check_mapping("logs", one).tag == check_mapping("logs", other).tag


def test_tag_changes_when_a_field_changes() -> None:
    base = check_mapping("logs", props(user={"type": "keyword"})).tag
    assert check_mapping("logs", props(user={"type": "text"})).tag != base
    assert check_mapping("logs", props(user={"type": "keyword", "ignore_above": 10})).tag != base
    assert check_mapping("logs", props(user={"type": "keyword"}, n={"type": "long"})).tag != base


def test_tag_changes_with_dynamic() -> None:
    body = props(user={"type": "keyword"})
    assert check_mapping("logs", body).tag != check_mapping("logs", {"dynamic": False, **body}).tag


def test_tag_is_never_empty_the_tag_of_dynamic_mapping() -> None:
    assert check_mapping("logs", {}).tag and DYNAMIC.tag == ""


# --- field kinds ----------------------------------------------------------------------------------

def test_standalone_keyword_field_is_keyword_and_not_twinned() -> None:
    kinds = check_mapping("logs", props(user={"type": "keyword"})).kinds()
    assert kinds.is_keyword("user") and "user" not in kinds.twinned


def test_text_field_is_not_keyword() -> None:
    kinds = check_mapping("logs", props(title=TITLE)).kinds()
    assert not kinds.is_keyword("title")


def test_keyword_sub_field_of_text_is_keyword_and_twinned() -> None:
    kinds = check_mapping("logs", props(title=TITLE)).kinds()
    assert kinds.is_keyword("title.keyword") and "title.keyword" in kinds.twinned


def test_keyword_inside_an_object_is_keyword_by_its_full_path() -> None:
    kinds = check_mapping("logs", props(user={"properties": {"name": {"type": "keyword"}}})).kinds()
    assert kinds.is_keyword("user.name") and not kinds.is_keyword("user") and not kinds.is_keyword("name")


@pytest.mark.parametrize("kind", ["long", "float", "date", "boolean"])
def test_non_string_fields_are_not_keyword(kind: str) -> None:
    assert not check_mapping("logs", props(field={"type": kind})).kinds().is_keyword("field")


def test_unmapped_keyword_sub_field_is_keyword_under_dynamic_true() -> None:
    kinds = check_mapping("logs", props(user={"type": "keyword"})).kinds()
    assert kinds.is_keyword("other.keyword") and kinds.is_keyword("keyword")


def test_keyword_sub_field_of_a_mapped_parent_without_it_is_not_keyword() -> None:
    kinds = check_mapping("logs", props(user={"type": "keyword"}, title={"type": "text"})).kinds()
    assert not kinds.is_keyword("user.keyword")
    assert not kinds.is_keyword("title.keyword")


def test_unmapped_plain_field_is_not_keyword() -> None:
    assert not check_mapping("logs", props(user={"type": "keyword"})).kinds().is_keyword("other")


def test_under_dynamic_false_unmapped_names_are_never_keyword() -> None:
    kinds = check_mapping("logs", {"dynamic": False, **props(user={"type": "keyword"})}).kinds()
    assert kinds.is_keyword("user")
    assert not kinds.is_keyword("other.keyword") and not kinds.is_keyword("keyword") and not kinds.is_keyword("other")


def test_keyword_values_have_text_twins_only_without_standalone_keywords() -> None:
    assert check_mapping("logs", props(title=TITLE, n={"type": "long"})).kinds().keyword_values_have_text_twins
    assert not check_mapping("logs", props(title=TITLE, user={"type": "keyword"})).kinds().keyword_values_have_text_twins
    assert DYNAMIC.keyword_values_have_text_twins


def test_kinds_carry_the_mapping_tag() -> None:
    mapping = check_mapping("logs", props(user={"type": "keyword"}))
    assert mapping.kinds().tag == mapping.tag


def test_field_kinds_of_an_index_without_configuration_are_dynamic() -> None:
    mappings = {"logs": check_mapping("logs", props(user={"type": "keyword"}))}
    assert field_kinds(mappings, "wiki") is DYNAMIC
    assert field_kinds(mappings, "logs") == mappings["logs"].kinds()


def test_to_json_is_the_body_elasticsearch_takes() -> None:
    mapping = check_mapping("logs", {"dynamic": "false", **props(user={"type": "keyword"})})
    assert mapping.to_json() == {"dynamic": False, "properties": {"user": {"type": "keyword"}}}


# --- mappings files -------------------------------------------------------------------------------

def write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def file_refusal(path: Path) -> str:
    with pytest.raises(MappingError) as caught:
        load_mappings(path)
    return str(caught.value)


def test_load_mappings_checks_every_index(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"logs": props(user={"type": "keyword"}), "wiki": {"dynamic": False}})
    mappings = load_mappings(path)
    assert set(mappings) == {"logs", "wiki"}
    assert mappings["logs"] == check_mapping("logs", props(user={"type": "keyword"}))
    assert mappings["wiki"].dynamic is False


def test_an_empty_mappings_object_configures_nothing(tmp_path: Path) -> None:
    assert load_mappings(write(tmp_path / "m.json", {})) == {}


def test_mappings_file_with_bad_json_is_refused_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", '{"logs": {')
    message = file_refusal(path)
    assert str(path) in message and "JSON" in message


def test_mappings_file_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{"logs": "\xff"}')
    assert str(path) in file_refusal(path)


def test_unreadable_mappings_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    message = file_refusal(path)
    assert str(path) in message and "cannot be read" in message


def test_a_directory_as_mappings_file_is_refused_by_name(tmp_path: Path) -> None:
    assert str(tmp_path) in file_refusal(tmp_path)


@pytest.mark.parametrize("content", [[], "logs", 3, None])
def test_mappings_file_not_holding_an_object_is_refused_by_name(tmp_path: Path, content: Any) -> None:
    path = write(tmp_path / "m.json", content)
    assert str(path) in file_refusal(path)


@pytest.mark.parametrize("index", ["Logs", "_logs", "lo gs", "a/b", ""])
def test_bad_index_name_is_refused_naming_file_and_index(tmp_path: Path, index: str) -> None:
    path = write(tmp_path / "m.json", {index: props(user={"type": "keyword"})})
    message = file_refusal(path)
    assert str(path) in message and repr(index) in message


def test_refused_mapping_in_a_file_names_file_index_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"logs": props(loc={"type": "geo_point"})})
    message = file_refusal(path)
    assert str(path) in message and "'logs'" in message and "'loc'" in message and "geo_point" in message


def test_parameters_that_do_not_change_matching_do_not_change_the_tag() -> None:
    plain = check_mapping("logs", {"properties": {"user": {"type": "keyword"}}})
    stored = check_mapping("logs", {"properties": {"user": {"type": "keyword", "doc_values": False, "store": True}}})
    assert plain.tag == stored.tag
