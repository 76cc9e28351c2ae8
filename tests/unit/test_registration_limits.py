"""Pathological queries are refused at registration, as Elasticsearch refuses them, never matched slowly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beater.errors import InvalidQuery
from beater.registration import make_registration


def test_ten_thousand_or_clauses_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="1024"):
        make_registration("i", " OR ".join(f"w{i}" for i in range(10_000)))


def test_ten_thousand_should_clauses_in_dsl_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="1024"):
        make_registration("i", {"bool": {"should": [{"term": {"a": str(i)}} for i in range(10_000)]}})


def test_ten_thousand_words_of_one_text_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="1024"):
        make_registration("i", " ".join(f"w{i}" for i in range(10_000)))


def test_deeply_nested_parentheses_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="deeper"):
        make_registration("i", "(" * 5000 + "a" + ")" * 5000)


def test_a_thousand_clauses_are_still_accepted() -> None:
    assert make_registration("i", " OR ".join(f"w{i}" for i in range(1000))).id


def test_too_many_clauses_name_the_limit_and_its_value() -> None:
    from beater.errors import QueryTooLarge

    with pytest.raises(QueryTooLarge) as caught:
        make_registration("i", " OR ".join(f"w{i}" for i in range(20)), max_clauses=10)
    body = caught.value.to_json()
    assert (body["error"], body["limit"], body["value"]) == ("estrom.error.limit_exceeded", "max_query_clauses", 10)
    assert caught.value.http_status == 413


def test_a_query_longer_than_max_query_chars_is_refused_before_parsing() -> None:
    from beater.errors import QueryTooLarge
    from beater.registration import check_length

    with pytest.raises(QueryTooLarge, match="max_query_chars") as caught:
        check_length("a" * 101, 100)
    assert (caught.value.limit, caught.value.value) == ("max_query_chars", 100)
    check_length("a" * 100, 100)


def test_a_dsl_query_is_measured_as_compact_json() -> None:
    from beater.errors import QueryTooLarge
    from beater.registration import check_length

    query = {"match": {"m": "x" * 50}}  # {"match":{"m":"xx..."}}: 18 characters and the 50 x
    check_length(query, 68)
    with pytest.raises(QueryTooLarge):
        check_length(query, 67)


class _Registrations:
    """A Beater over a real embedded percolator, with registration limits."""

    def __init__(self, tmp_path: "Path", **limits: int) -> None:
        from twisted.internet.task import Clock

        from beater.limits import Limits
        from beater.percolator.embedded import EmbeddedPercolator
        from beater.pipeline import Pipeline
        from beater.sequence import Sequencer
        from beater.service import Beater

        percolator = EmbeddedPercolator(tmp_path / "registrations.sqlite")
        percolator.start()

        async def publish(sub_id: str, hits: Any) -> None:
            return None

        self.beater = Beater(percolator, Pipeline(percolator, publish, Sequencer(None), Clock()))
        self.beater.limits = Limits(**limits)

    def register(self, index: str, query: str) -> Any:
        from twisted.internet.defer import ensureDeferred

        outcome: list = []
        ensureDeferred(self.beater.register(index, query)).addBoth(outcome.append)
        return outcome[0]


def test_one_registration_past_max_registrations_per_index_is_429_naming_the_limit(tmp_path: "Path") -> None:
    from beater.errors import TooManyRegistrations

    registrations = _Registrations(tmp_path, max_registrations_per_index=2)
    assert registrations.register("i", "a")["id"] and registrations.register("i", "b")["id"]
    refused = registrations.register("i", "c")
    assert isinstance(refused.value, TooManyRegistrations) and refused.value.http_status == 429
    assert refused.value.to_json() | {"message": ""} == {
        "error": "estrom.error.too_many_registrations", "message": "", "part": "i",
        "limit": "max_registrations_per_index", "value": 2}
    assert registrations.register("other", "c")["id"]  # another index has room


def test_registering_a_known_query_again_at_the_limit_still_answers_it(tmp_path: "Path") -> None:
    registrations = _Registrations(tmp_path, max_registrations_per_index=1)
    first = registrations.register("i", "a")
    assert registrations.register("i", "a")["id"] == first["id"]


def test_one_registration_past_max_registrations_in_total_is_refused(tmp_path: "Path") -> None:
    from beater.errors import TooManyRegistrations

    registrations = _Registrations(tmp_path, max_registrations=2)
    registrations.register("i", "a")
    registrations.register("j", "b")
    refused = registrations.register("k", "c")
    assert isinstance(refused.value, TooManyRegistrations) and refused.value.limit == "max_registrations"


def test_the_query_length_limit_applies_to_register(tmp_path: "Path") -> None:
    from beater.errors import QueryTooLarge

    registrations = _Registrations(tmp_path, max_query_chars=10)
    assert isinstance(registrations.register("i", "a" * 11).value, QueryTooLarge)
