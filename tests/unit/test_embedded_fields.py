"""Documents read as Elasticsearch indexes them with first-seen dynamic mappings."""

from beater.percolator.embedded.fields import FieldModel, FieldScope, analyse_document, parse_date


def model_for(*docs: dict) -> FieldModel:
    model = FieldModel()
    model.grow(list(docs))
    return model


def test_first_value_fixes_the_field_type() -> None:
    model = model_for({"n": 1, "s": "x", "d": "2020-01-01", "b": True, "f": 1.5, "o": {"x": "y"}}, {"n": "text"})
    assert model.types == {
        "n": "long", "s": "text", "s.keyword": "keyword", "d": "date", "b": "boolean", "f": "float",
        "o": "object", "o.x": "text", "o.x.keyword": "keyword",
    }


def test_grow_returns_only_new_fields() -> None:
    model = model_for({"a": "x"})
    assert model.grow([{"a": "y", "b": 2}]) == ["b"]


def test_model_round_trips_through_properties() -> None:
    model = model_for({"a": "x", "o": {"n": 1}})
    assert FieldModel(model.to_json()).types == model.types


def test_malformed_numbers_are_left_out_and_decimals_truncated() -> None:
    model = model_for({"n": 1})
    doc = analyse_document({"n": ["12.5", "abc", "1e3", True]}, model)
    assert doc.numbers["n"] == [12, 1000]


def test_float_fields_hold_32_bit_values() -> None:
    doc = analyse_document({"f": 19.99}, model_for({"f": 1.5}))
    assert doc.numbers["f"] == [19.989999771118164]


def test_array_values_are_100_positions_apart() -> None:
    doc = analyse_document({"t": ["quick fox", "brown dog"]}, model_for({"t": "x"}))
    assert doc.tokens["t"]["brown"] == [102]


def test_keyword_ignores_values_longer_than_256() -> None:
    doc = analyse_document({"t": ["u" * 257, "short"]}, model_for({"t": "x"}))
    assert doc.keywords["t.keyword"] == ["short"]


def test_object_where_value_is_mapped_is_left_out() -> None:
    doc = analyse_document({"t": {"x": 1}, "o": "flat"}, model_for({"t": "x", "o": {"x": "y"}}))
    assert doc.present == set()


def test_dotted_and_internal_keys_are_ignored() -> None:
    model = model_for({"a.b": "x", "@estrom_x": "y"})
    assert model.types == {}


def test_date_in_other_format_is_left_out() -> None:
    doc = analyse_document({"d": "2021/06/15 12:30:00"}, model_for({"d": "2020-01-01"}))
    assert "d" not in doc.present


def test_empty_boolean_string_is_false() -> None:
    doc = analyse_document({"b": ""}, model_for({"b": True}))
    assert doc.booleans["b"] == [False]


def test_partial_date_rounds_up_time_fields_only() -> None:
    assert parse_date("2020", round_up=True) == 1577923199999  # 2020-01-01T23:59:59.999, as Elasticsearch


def test_date_with_offset_is_utc_millis() -> None:
    assert parse_date("2021-06-15T12:30:00.123+02:00") == 1623753000123


def test_a_scope_leaves_unread_fields_unanalysed() -> None:
    doc = {"title": "big cat", "comment": "long text", "n": 3, "meta": {"domain": "x.org", "uri": "u"}}
    scoped = analyse_document(doc, model_for(doc), FieldScope.of({"title", "meta.domain"}))
    assert set(scoped.tokens) == {"title", "meta.domain"} and not scoped.numbers


def test_a_scope_reading_an_object_reads_everything_below_it() -> None:
    doc = {"meta": {"domain": "x.org", "inner": {"n": 1}}, "n": 2}
    scoped = analyse_document(doc, model_for(doc), FieldScope.of({"meta"}))
    assert set(scoped.tokens) == {"meta.domain"} and scoped.numbers == {"meta.inner.n": [1]}
    assert {"meta", "meta.inner", "meta.inner.n"} <= scoped.present


def test_a_scope_reading_a_keyword_sub_field_reads_its_parent_value() -> None:
    doc = {"user": "Bob Smith", "title": "t"}
    scoped = analyse_document(doc, model_for(doc), FieldScope.of({"user.keyword"}))
    assert scoped.keywords == {"user.keyword": ["Bob Smith"]} and "title" not in scoped.tokens


def test_no_scope_reads_every_field() -> None:
    doc = {"title": "a", "n": 1}
    assert set(analyse_document(doc, model_for(doc)).fields_of_type()) == {("title", "text"), ("title.keyword", "keyword"), ("n", "long")}
