"""Mappings the Elasticsearch backend adds follow Elasticsearch's dynamic-mapping rules."""

from __future__ import annotations

from beater.percolator.mapping import TEXT, looks_like_date, mapping_for_documents


def test_strings_become_text_with_a_keyword_subfield() -> None:
    """A string field is text with a .keyword sub-field (ignore_above 256)."""
    assert mapping_for_documents([{"title": "Big cat"}], {}) == {"title": TEXT}


def test_numbers_booleans_and_dates_get_their_types() -> None:
    """Integers are long, floats float, booleans boolean, ISO dates date."""
    new = mapping_for_documents([{"n": 1, "x": 1.5, "b": True, "dt": "2018-03-07T16:16:17+00:00"}], {})
    assert {k: v["type"] for k, v in new.items()} == {"n": "long", "x": "float", "b": "boolean", "dt": "date"}


def test_numeric_strings_stay_text() -> None:
    """numeric_detection is off: "123" is text."""
    assert mapping_for_documents([{"id": "123"}], {}) == {"id": TEXT}


def test_objects_map_their_fields_as_properties() -> None:
    """Nested objects become properties, field by field."""
    new = mapping_for_documents([{"meta": {"domain": "x.org", "offset": 7}}], {})
    assert new == {"meta": {"properties": {"domain": TEXT, "offset": {"type": "long"}}}}


def test_arrays_take_the_type_of_their_first_value() -> None:
    """An array field is mapped from its first non-null element."""
    assert mapping_for_documents([{"tags": [None, "a", "b"]}], {}) == {"tags": TEXT}


def test_known_fields_are_not_remapped() -> None:
    """Only fields not mapped yet are returned."""
    assert mapping_for_documents([{"title": "x", "n": 2}], {"title": TEXT}) == {"n": {"type": "long"}}


def test_first_document_fixes_the_type() -> None:
    """Within one batch, the first document that shows a field decides its type."""
    assert mapping_for_documents([{"v": 1}, {"v": "text"}], {}) == {"v": {"type": "long"}}


def test_date_detection_follows_the_default_formats() -> None:
    """strict_date_optional_time and yyyy/MM/dd forms are dates; other strings are not."""
    assert looks_like_date("2018-03-07") and looks_like_date("2018/03/07 16:16:17")
    assert not looks_like_date("March 7") and not looks_like_date("20180307x")
