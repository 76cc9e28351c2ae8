"""Tumbling-window counts: which window a hit falls in, when a window closes, what its record says."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from tailor import windows
from tailor.windows import WindowCounter, WindowSpec, group_keys, hit_time_ms, iso_ms, lookup, parse_duration_ms, time_ms

T0 = 1_764_590_400_000  # 2025-12-01T12:00:00.000Z, a multiple of every window below


def hit(received_ms: int, **source: Any) -> Dict[str, Any]:
    return {"_index": "wiki", "_id": "x", "_seq": 1, "_beater": "b", "_received": iso_ms(received_ms), "_source": source}


def counter(start_ms: int = T0, **spec: Any) -> WindowCounter:
    spec.setdefault("window_ms", 10_000)
    return WindowCounter(WindowSpec(**spec), start_ms)


def counts(records: List[Dict[str, Any]]) -> List[int]:
    return [r["count"] for r in records]


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ms", [("10s", 10_000), ("1m", 60_000), ("1h", 3_600_000), ("500ms", 500), ("2", 2000), ("1.5m", 90_000)])
def test_durations_take_ms_s_m_h_and_bare_seconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "s", "10d", "-1s", "1e3s", "ten", "10 s s"])
def test_durations_refuse_anything_else(text: str) -> None:
    assert parse_duration_ms(text) is None


def test_iso_ms_writes_utc_with_milliseconds_like_received() -> None:
    assert iso_ms(T0 + 1) == "2025-12-01T12:00:00.001Z"


def test_lookup_follows_a_dotted_path() -> None:
    assert lookup({"meta": {"dt": "x"}}, "meta.dt") == "x"


def test_lookup_prefers_a_literal_key_with_dots() -> None:
    assert lookup({"meta.dt": "flat", "meta": {"dt": "nested"}}, "meta.dt") == "flat"


def test_lookup_finds_a_key_with_dots_below_a_path() -> None:
    assert lookup({"a": {"b.c": 1}}, "a.b.c") == 1


def test_lookup_of_a_missing_path_is_none() -> None:
    assert lookup({"meta": "not an object"}, "meta.dt") is None


@pytest.mark.parametrize("value, ms", [
    ("2025-12-01T12:00:00Z", T0),
    ("2025-12-01T12:00:00.250Z", T0 + 250),
    ("2025-12-01T13:00:00+01:00", T0),
    ("2025-12-01T12:00:00", T0),  # no zone: UTC
    (T0, T0),  # epoch ms
    (T0 // 1000, T0),  # epoch s
    (T0 / 1000 + 0.5, T0 + 500),  # fractional epoch s
    (str(T0), T0),
])
def test_event_times_are_iso_8601_or_epoch_seconds_or_milliseconds(value: Any, ms: int) -> None:
    assert time_ms(value) == ms


@pytest.mark.parametrize("value", [None, "", "yesterday", True, -5, float("nan"), {"t": 1}, [T0]])
def test_values_that_are_no_time_are_none(value: Any) -> None:
    assert time_ms(value) is None


def test_a_hit_happens_at_its_time_field_when_it_has_one() -> None:
    assert hit_time_ms(hit(T0 + 5000, meta={"dt": "2025-12-01T12:00:01Z"}), "meta.dt") == T0 + 1000


def test_a_hit_without_its_time_field_happens_when_it_was_received() -> None:
    assert hit_time_ms(hit(T0 + 5000, meta={}), "meta.dt") == T0 + 5000


def test_a_hit_whose_time_field_is_no_time_happens_when_it_was_received() -> None:
    assert hit_time_ms(hit(T0 + 5000, **{"@timestamp": "soon"}), "@timestamp") == T0 + 5000


# --- groups --------------------------------------------------------------------------------------


def test_a_string_is_one_group() -> None:
    assert group_keys(hit(T0, wiki="enwiki"), "wiki") == ["enwiki"]


def test_an_array_counts_once_in_each_distinct_value() -> None:
    assert group_keys(hit(T0, tags=["a", "b", "a"]), "tags") == ["a", "b"]


@pytest.mark.parametrize("source", [{}, {"wiki": None}, {"wiki": []}, {"wiki": {"name": "x"}}])
def test_a_missing_field_is_the_null_group(source: Dict[str, Any]) -> None:
    assert group_keys(hit(T0, **source), "wiki") == [None]


def test_numbers_and_booleans_group_by_their_keyword_text() -> None:
    assert group_keys(hit(T0, v=[3, True]), "v") == ["3", "true"]


# --- windows -------------------------------------------------------------------------------------


def test_windows_are_aligned_to_the_epoch() -> None:
    c = counter(T0 + 3000)
    c.add(hit(T0 + 4000), T0 + 4000)
    (record,) = c.advance(T0 + 10_000)
    assert record["window"]["start"] == "2025-12-01T12:00:00.000Z"
    assert record["window"]["end"] == "2025-12-01T12:00:10.000Z"


def test_the_first_window_is_partial_when_the_subscription_began_after_its_start() -> None:
    c = counter(T0 + 3000)
    assert [r["window"]["partial"] for r in c.advance(T0 + 20_000)] == [True, False]


def test_the_first_window_is_whole_when_the_subscription_began_at_its_start() -> None:
    assert counter(T0).advance(T0 + 10_000)[0]["window"]["partial"] is False


def test_a_window_is_emitted_once_when_it_closes() -> None:
    c = counter()
    c.add(hit(T0 + 1), T0 + 1)
    assert c.advance(T0 + 9_999) == []
    assert counts(c.advance(T0 + 10_000)) == [1]
    assert c.advance(T0 + 10_001) == []


def test_empty_windows_are_emitted_with_a_zero_count() -> None:
    c = counter()
    c.add(hit(T0 + 25_000), T0 + 25_000)
    assert counts(c.advance(T0 + 30_000)) == [0, 0, 1]


def test_closed_windows_are_final() -> None:
    assert counter().advance(T0 + 10_000)[0]["window"]["final"] is True


def test_hits_are_counted_in_the_window_of_their_event_time() -> None:
    c = counter(time_field="meta.dt", lateness_ms=5000)
    c.add(hit(T0 + 12_000, meta={"dt": iso_ms(T0 + 9_000)}), T0 + 12_000)
    c.add(hit(T0 + 12_000, meta={"dt": iso_ms(T0 + 11_000)}), T0 + 12_000)
    assert counts(c.advance(T0 + 25_000)) == [1, 1]


def test_a_window_waits_for_the_allowed_lateness_before_it_closes() -> None:
    c = counter(lateness_ms=2000)
    assert c.advance(T0 + 11_999) == []
    assert len(c.advance(T0 + 12_000)) == 1


def test_next_close_is_the_window_end_plus_the_lateness() -> None:
    assert counter(lateness_ms=2000).next_close_ms() == T0 + 12_000


def test_a_hit_within_the_lateness_counts_in_its_own_window() -> None:
    c = counter(time_field="t", lateness_ms=2000)
    c.add(hit(T0 + 11_500, t=T0 + 9_500), T0 + 11_500)
    assert counts(c.advance(T0 + 12_000)) == [1]


def test_a_hit_later_than_the_lateness_is_counted_late_in_the_current_window() -> None:
    c = counter(time_field="t", lateness_ms=2000)
    c.advance(T0 + 12_000)
    c.add(hit(T0 + 13_000, t=T0 + 5_000), T0 + 13_000)
    (record,) = c.advance(T0 + 22_000)
    assert (record["count"], record["late"]) == (0, 1)


def test_a_hit_from_before_the_subscription_is_late_not_dropped() -> None:
    c = counter(T0 + 10_000, time_field="t")
    c.add(hit(T0 + 10_000, t=T0 - 60_000), T0 + 10_000)
    assert c.advance(T0 + 20_000)[0]["late"] == 1


def test_a_hit_dated_more_than_a_window_ahead_is_counted_early_in_the_current_window() -> None:
    c = counter(time_field="t")
    c.add(hit(T0 + 1000, t=T0 + 3_600_000), T0 + 1000)
    (record,) = c.advance(T0 + 10_000)
    assert (record["count"], record["early"]) == (0, 1)


def test_a_hit_dated_within_a_window_ahead_counts_in_its_window() -> None:
    c = counter(time_field="t")
    c.add(hit(T0 + 9000, t=T0 + 12_000), T0 + 9000)
    assert counts(c.advance(T0 + 20_000)) == [0, 1]


def test_arrival_time_is_received_not_the_clock() -> None:
    c = counter(lateness_ms=1000)
    c.add(hit(T0 + 9_900), T0 + 10_200)  # received in the first window, delivered after its end
    assert counts(c.advance(T0 + 20_000)) == [1]


def test_a_gap_marks_the_open_windows_partial() -> None:
    c = counter()
    c.advance(T0 + 10_000)
    c.mark_partial()
    assert [r["window"]["partial"] for r in c.advance(T0 + 30_000)] == [True, False]


def test_a_clock_far_ahead_emits_a_bounded_number_of_windows_and_skips_to_the_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "MAX_CATCH_UP", 5)
    c = counter()
    assert len(c.advance(T0 + 1_000_000)) == 5
    assert c.next_ms == T0 + 1_000_000
    assert c.advance(T0 + 1_010_000)[0]["window"]["partial"] is True


def test_a_clock_that_goes_back_emits_nothing() -> None:
    c = counter()
    c.advance(T0 + 10_000)
    assert c.advance(T0) == []


# --- records -------------------------------------------------------------------------------------


def test_without_by_a_record_has_no_groups() -> None:
    record = counter().advance(T0 + 10_000)[0]
    assert record == {"window": {"start": iso_ms(T0), "end": iso_ms(T0 + 10_000), "partial": False, "final": True},
                      "count": 0, "late": 0, "early": 0}


def test_groups_are_the_top_n_by_count_and_the_rest_is_other() -> None:
    c = counter(by="wiki", top=2)
    for wiki, n in (("enwiki", 3), ("dewiki", 2), ("frwiki", 1), ("itwiki", 1)):
        for _ in range(n):
            c.add(hit(T0 + 1, wiki=wiki), T0 + 1)
    record = c.advance(T0 + 10_000)[0]
    assert record["groups"] == [{"key": "enwiki", "count": 3}, {"key": "dewiki", "count": 2}]
    assert (record["count"], record["other"], record["by"]) == (7, 2, "wiki")


def test_groups_of_equal_count_are_ordered_by_key_with_null_last() -> None:
    c = counter(by="wiki")
    for wiki in ("b", None, "a"):
        c.add(hit(T0 + 1, wiki=wiki), T0 + 1)
    assert [g["key"] for g in c.advance(T0 + 10_000)[0]["groups"]] == ["a", "b", None]


def test_an_empty_window_with_by_has_no_groups_and_no_other() -> None:
    record = counter(by="wiki").advance(T0 + 10_000)[0]
    assert (record["groups"], record["other"]) == ([], 0)


def test_distinct_keys_past_the_cap_are_counted_in_other_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "MAX_GROUPS", 2)
    c = counter(by="k", top=10)
    for key in ("a", "b", "c", "d", "a"):
        c.add(hit(T0 + 1, k=key), T0 + 1)
    record = c.advance(T0 + 10_000)[0]
    assert record["groups"] == [{"key": "a", "count": 2}, {"key": "b", "count": 1}]
    assert (record["count"], record["other"], record["groups_capped"]) == (5, 2, True)


def test_provisional_records_show_the_current_window_unfinished() -> None:
    c = counter()
    c.add(hit(T0 + 1), T0 + 1)
    (record,) = c.provisional(T0 + 5000)
    assert (record["count"], record["window"]["final"]) == (1, False)


def test_provisional_records_include_open_windows_that_changed_and_only_once() -> None:
    c = counter(lateness_ms=5000)
    c.add(hit(T0 + 9000), T0 + 11_000)
    assert [r["window"]["start"] for r in c.provisional(T0 + 11_000)] == [iso_ms(T0), iso_ms(T0 + 10_000)]
    assert [r["window"]["start"] for r in c.provisional(T0 + 12_000)] == [iso_ms(T0 + 10_000)]


def test_provisional_records_do_not_close_a_window() -> None:
    c = counter()
    c.add(hit(T0 + 1), T0 + 1)
    c.provisional(T0 + 5000)
    assert counts(c.advance(T0 + 10_000)) == [1]


def test_a_hit_that_is_not_an_object_counts_when_it_arrives() -> None:
    c = counter()
    c.add("not a hit", T0 + 1)
    assert counts(c.advance(T0 + 10_000)) == [1]


def test_a_window_of_zero_length_is_refused() -> None:
    with pytest.raises(ValueError):
        WindowCounter(WindowSpec(window_ms=0), T0)
