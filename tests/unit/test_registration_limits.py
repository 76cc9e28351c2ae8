"""Pathological queries are refused at registration, as Elasticsearch refuses them, never matched slowly."""

from __future__ import annotations

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
